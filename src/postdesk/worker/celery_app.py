"""Celery scale-out: the app, its drain and purge tasks, the beat schedule and the submit hook.

With ``POSTDESK_BROKER_URL`` set (``redis://…`` or ``amqp://…``), ``postdesk serve`` runs no
embedded worker; ``postdesk worker`` processes do the sending instead:

``postdesk.drain``
    Claims due messages (``claim_due``) and delivers them (``deliver_claimed``), batch
    after batch, until nothing is due. Each worker process opens one ``Runtime`` (and one
    rate limiter) the first time it runs a task and keeps it. The leases, the duplicate
    bound and the retries are those of ``postdesk.services.delivery.deliver``; Celery only says
    *when* to look. Drains are triggered by every submission (``install_submit_hook``:
    ``Runtime.submitted_hooks`` sends one) and by the beat schedule every
    ``drain_every`` seconds, so that retries coming due, messages put back by the rate
    limit and leases left by a killed worker are picked up without new submissions.
    A trigger that finds nothing due costs one query per status; a lost trigger (broker
    down, worker killed mid-task) costs nothing but a delay until the next one.

``postdesk.purge``
    ``purge_records`` of ``postdesk.services.records.retention``, hourly from the beat schedule.

Rate limits
    ``max_per_minute`` is counted in shared storage so that it holds across every worker
    process: ``POSTDESK_RATE_LIMIT_STORAGE`` if set (any synchronous ``limits`` storage
    URI, e.g. ``redis://host:6379/2``), else the broker itself when it is Redis. With an
    AMQP broker and no ``POSTDESK_RATE_LIMIT_STORAGE`` each worker process counts alone
    (in memory) and ``postdesk worker`` warns at start: the limit then holds per process.

The beat schedule lives in memory (``celery.beat:Scheduler``: no schedule file). Every
``postdesk worker`` runs it unless started with ``--no-beat``; several schedules only
mean more (cheap) triggers. ``POSTDESK_CELERY_QUEUE`` (default ``postdesk``) names the
queue, so that deployments (or test runs) sharing one broker keep apart.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from postdesk.config import Settings
from postdesk.errors import ConfigError
from postdesk.services.delivery.connections import ConnectionPool
from postdesk.services.delivery.drain import drain_once
from postdesk.services.delivery.rate_limits import SendRateLimiter, make_limiter
from postdesk.services.delivery.sender_settings import SenderSettingsCache
from postdesk.services.records.retention import PURGE_EVERY_S, purge_records
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.storage.db import describe_database_error
from postdesk.worker.embedded import new_worker_id

log = logging.getLogger(__name__)

DRAIN_TASK = "postdesk.drain"
PURGE_TASK = "postdesk.purge"
DEFAULT_QUEUE = "postdesk"
DRAIN_EVERY_S = 5.0
# A trigger that waited longer than this in the queue is dropped: a newer one follows.
TRIGGER_EXPIRES_S = 60.0
TRIGGER_CONNECT_S = 2.0
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class CeleryOptions:
    """What the Celery side reads besides ``Settings``: queue, trigger interval, limiter."""

    queue: str = DEFAULT_QUEUE
    drain_every: float = DRAIN_EVERY_S
    rate_limit_storage: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CeleryOptions:
        env = os.environ if environ is None else environ
        queue = env.get("POSTDESK_CELERY_QUEUE", "").strip() or DEFAULT_QUEUE
        storage = env.get("POSTDESK_RATE_LIMIT_STORAGE", "").strip() or None
        return cls(queue=queue, rate_limit_storage=storage)


def broker_scheme(settings: Settings) -> str:
    """The broker URL's scheme; ``ConfigError`` when no broker postdesk can use is set."""
    url = settings.broker_url
    if not url:
        raise ConfigError(
            "POSTDESK_BROKER_URL is not set: there is no broker for Celery workers",
            hint="Set POSTDESK_BROKER_URL=redis://127.0.0.1:6379/0 (or amqp://…), or run "
            "postdesk serve alone: without a broker its embedded worker sends the mail.",
        )
    scheme = url.split(":", 1)[0].lower()
    if scheme not in BROKER_SCHEMES:
        raise ConfigError(
            f"POSTDESK_BROKER_URL must be a redis:// or amqp:// URL, not {scheme!r}",
            hint="Example: redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//",
        )
    return scheme


def rate_limit_storage(settings: Settings, options: CeleryOptions) -> str | None:
    """The ``limits`` storage URI the workers share; ``None``: in memory, per process."""
    if options.rate_limit_storage:
        return options.rate_limit_storage
    if settings.broker_url and broker_scheme(settings).startswith("redis"):
        return settings.broker_url
    return None


def make_celery(settings: Settings, options: CeleryOptions | None = None) -> Any:
    """A Celery app on ``settings.broker_url`` with postdesk's tasks and beat schedule."""
    options = options or CeleryOptions.from_env()
    broker_scheme(settings)
    try:
        from celery import Celery
    except ImportError as exc:
        raise ConfigError(
            "POSTDESK_BROKER_URL is set but Celery is not installed",
            hint="Install the celery extra: pip install 'postdesk[celery]'",
        ) from exc
    app = Celery("postdesk", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=options.queue,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # Early acks: a drain lost with its worker is harmless, leases and beat recover.
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3.0,
        broker_transport_options={"socket_connect_timeout": 3.0, "socket_timeout": 5.0},
        beat_scheduler="celery.beat:Scheduler",  # in memory: no schedule file
        beat_schedule={
            "postdesk-drain": {
                "task": DRAIN_TASK,
                "schedule": options.drain_every,
                "options": {"expires": max(options.drain_every, 1.0)},
            },
            "postdesk-purge": {"task": PURGE_TASK, "schedule": PURGE_EVERY_S},
        },
        timezone="UTC",
    )
    app.postdesk_settings = settings
    app.postdesk_options = options
    app.task(name=DRAIN_TASK, bind=True, ignore_result=True)(_drain_task)
    app.task(name=PURGE_TASK, bind=True, ignore_result=True)(_purge_task)
    return app


# --- the tasks, in a worker process --------------------------------------------------------


class _ProcessState:
    """The runtime and limiter of one worker process (opened on first use, after fork)."""

    def __init__(self, settings: Settings, options: CeleryOptions) -> None:
        self.pid = os.getpid()
        self.worker_id = new_worker_id()
        self.rt: Runtime = open_runtime(settings)
        self.limiter: SendRateLimiter = make_limiter(rate_limit_storage(settings, options))


_STATE: dict[int, _ProcessState] = {}


def _process_state(app: Any) -> _ProcessState:
    # Keyed by pid: a runtime opened before a fork must not be used by the child.
    state = _STATE.get(os.getpid())
    if state is None:
        state = _ProcessState(app.postdesk_settings, app.postdesk_options)
        _STATE[os.getpid()] = state
    return state


def drain(rt: Runtime, limiter: SendRateLimiter, worker_id: str) -> int:
    """Claim and deliver until nothing is due; the number of messages claimed."""
    total = 0
    known = SenderSettingsCache()
    with ConnectionPool() as pool:
        while True:
            drained = drain_once(
                rt, worker_id=worker_id, limiter=limiter, connections=pool, sender_settings=known
            )
            if not drained.claimed:
                return total
            total += drained.claimed


def _drain_task(task: Any) -> int:
    state = _process_state(task.app)
    # One lease owner per run: with a thread pool, runs in one process must not share one.
    try:
        return drain(state.rt, state.limiter, f"{state.worker_id}/{secrets.token_hex(2)}")
    except SQLAlchemyError as exc:
        # Not re-raised: Celery would log the statement's parameters, which hold mail
        # content. Leases bring back what this run held; the next trigger tries again.
        log.error(
            "drain: database error, the next trigger retries: %s", describe_database_error(exc)
        )
        return 0


def _purge_task(task: Any) -> int:
    purged = purge_records(_process_state(task.app).rt)
    if purged:
        log.info("purged %d records older than the retention period", purged)
    return purged


# --- the submit hook, in serve and send ----------------------------------------------------


def install_submit_hook(rt: Runtime, options: CeleryOptions | None = None) -> Callable[[], None]:
    """Send ``postdesk.drain`` after every submission on ``rt``; returns the hook.

    The hook never raises and never waits long: the message is committed already, so a
    broker that cannot be reached (one connection attempt, ``TRIGGER_CONNECT_S`` at most)
    is logged and the beat schedule's next trigger sends the mail instead.
    """
    celery = make_celery(rt.settings, options)
    # This app only publishes: one connection attempt, no retries (kombu's default retries
    # for seconds, holding the request up).
    celery.conf.broker_transport_options = {
        **celery.conf.broker_transport_options,
        "max_retries": 0,
        "socket_connect_timeout": TRIGGER_CONNECT_S,
    }
    celery.conf.broker_connection_timeout = TRIGGER_CONNECT_S

    def trigger_drain() -> None:
        try:
            celery.send_task(DRAIN_TASK, expires=TRIGGER_EXPIRES_S, retry=False)
        except Exception as exc:  # a request must not fail for a trigger
            log.warning(
                "could not send %s to the broker (%s: %s); a worker's next scheduled "
                "drain will send the mail",
                DRAIN_TASK,
                type(exc).__name__,
                " ".join(str(exc).split())[:200],
            )

    rt.submitted_hooks.append(trigger_drain)
    return trigger_drain


# --- the app the `celery` command line finds ------------------------------------------------


_APP: list[Any] = []


def __getattr__(name: str) -> Any:
    """``postdesk.worker.celery_app:app`` for ``celery -A``, built from the environment."""
    if name != "app":
        raise AttributeError(name)
    if not _APP:
        _APP.append(make_celery(Settings.from_env()))
    return _APP[0]
