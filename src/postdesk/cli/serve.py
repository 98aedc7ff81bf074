"""``postdesk serve``: the web application, the embedded worker and the setup link."""

from __future__ import annotations

import logging
import re

import uvicorn
from rich.markup import escape

from postdesk import __version__
from postdesk.cli.output import stderr
from postdesk.services.access.sessions import SetupLink
from postdesk.services.runtime import runtime
from postdesk.site import create_site
from postdesk.worker.embedded import EmbeddedWorker


class _RedactSetupToken(logging.Filter):
    """Access log lines must not carry the one-time setup token."""

    _token = re.compile(r"(token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._token.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def run_server(host: str, port: int) -> None:
    with runtime() as rt:
        worker = None if rt.settings.broker_url else EmbeddedWorker(rt)
        if rt.settings.broker_url:
            from postdesk.worker.celery_app import install_submit_hook

            install_submit_hook(rt)  # Celery workers send the mail: tell them of each one
        link = SetupLink()
        app = create_site(rt, worker=worker, setup_link=link)
        # postdesk reads X-Forwarded-For itself, from POSTDESK_TRUSTED_PROXIES only
        # (http.deps.peer_ip); uvicorn's own handling would believe any loopback client.
        config = uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=False)
        logging.getLogger("uvicorn.access").addFilter(_RedactSetupToken())
        stderr.print(f"postdesk {__version__}: data in {escape(str(rt.settings.home))}")
        token = link.issue(rt)
        if token:
            stderr.print(
                "No administrator exists yet. Create one with this one-time link, valid for 24 h:\n"
                f"  {rt.settings.public_url or f'http://{host}:{port}'}/setup?token={token}"
            )
        stderr.print(f"listening on http://{host}:{port}/ (Ctrl-C stops)")
        if worker is not None:
            worker.start()
        try:
            uvicorn.Server(config).run()
        except KeyboardInterrupt:
            pass  # uvicorn re-raises Ctrl-C after its graceful shutdown: a normal stop
        finally:
            if worker is not None:
                worker.stop(timeout=30)
