"""``postdesk worker``: a Celery worker that sends the queue when a broker is configured.

It refuses to start (``config_error``, exit 2) without a ``redis://`` or ``amqp://``
``POSTDESK_BROKER_URL``. Before Celery starts it opens the runtime once (migrating the
database and checking the secret key, so a bad configuration stops here with a hint) and
closes it again: each worker process opens its own after the fork. The tasks, the beat
schedule and the shared rate limit are ``postdesk.worker.celery_app``'s.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from postdesk.cli.output import stderr
from postdesk.errors import ConfigError

if TYPE_CHECKING:
    from postdesk.config import Settings
    from postdesk.worker.celery_app import CeleryOptions

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# postdesk.worker.celery_app's DRAIN_EVERY_S (a test keeps the two equal), written out here
# so that building the app for --help does not import Celery's module and the services.
DRAIN_EVERY_S = 5.0


def worker(
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", min=1, help="Worker processes sending mail."),
    ] = 2,
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", help="DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    ] = "INFO",
    drain_every: Annotated[
        float,
        typer.Option(
            "--drain-every",
            min=0.1,
            help="Seconds between scheduled drains (retries due, expired leases).",
        ),
    ] = DRAIN_EVERY_S,
    beat: Annotated[
        bool,
        typer.Option("--beat/--no-beat", help="Run the periodic drain and purge schedule."),
    ] = True,
) -> None:
    """Run a Celery worker that sends the queue (needs POSTDESK_BROKER_URL)."""
    level = _log_level(loglevel)
    from postdesk.config import Settings
    from postdesk.services.runtime import runtime
    from postdesk.worker.celery_app import CeleryOptions, broker_scheme, make_celery

    settings = Settings.from_env()
    broker_scheme(settings)
    options = replace(CeleryOptions.from_env(), drain_every=drain_every)
    with runtime(settings):
        pass  # migrate and check the key now; each worker process opens its own runtime
    _check_rate_limit_storage(settings, options)
    app = make_celery(settings, options)
    stderr.print(
        f"postdesk worker: queue {escape(options.queue)}, {concurrency} process(es)",
        highlight=False,
    )
    argv = [
        "worker",
        f"--loglevel={level}",
        f"--concurrency={concurrency}",
        f"--queues={options.queue}",
        # Unique per process: on one host two workers named alike clash on AMQP.
        f"--hostname=postdesk-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    if beat:
        argv.append("--beat")
    app.worker_main(argv=argv)


def _log_level(loglevel: str) -> str:
    level = loglevel.upper()
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"--loglevel must be one of {', '.join(LOG_LEVELS)}, not {loglevel!r}",
            hint="Example: postdesk worker --loglevel INFO",
        )
    return level


def _check_rate_limit_storage(settings: Settings, options: CeleryOptions) -> None:
    """Stop the start on a storage URI limits cannot use; warn when limits are per process."""
    from postdesk.services.delivery.rate_limits import make_limiter
    from postdesk.worker.celery_app import rate_limit_storage

    storage = rate_limit_storage(settings, options)
    try:
        make_limiter(storage)
    except Exception as exc:
        raise ConfigError(
            f"POSTDESK_RATE_LIMIT_STORAGE: {type(exc).__name__}: {exc}",
            hint="Give a limits storage URI such as redis://127.0.0.1:6379/2",
        ) from exc
    if storage is None:
        logging.getLogger(__name__).warning(
            "max_per_minute is counted per worker process: set POSTDESK_RATE_LIMIT_STORAGE "
            "(e.g. redis://host:6379/2) to share it between workers"
        )
        stderr.print(
            "warning: with an AMQP broker and no POSTDESK_RATE_LIMIT_STORAGE, each worker "
            "process counts max_per_minute alone",
            highlight=False,
        )
