"""The whole site ``postdesk serve`` runs: the REST API and the administrator's pages on
one base application (``postdesk.http``)."""

from __future__ import annotations

from fastapi import FastAPI

from postdesk.api.app import install_api
from postdesk.http.app import WorkerState, new_app
from postdesk.services.access.sessions import SetupLink
from postdesk.services.runtime import Runtime
from postdesk.web.pages import error_page, install_pages


def create_site(
    rt: Runtime, *, worker: WorkerState | None = None, setup_link: SetupLink | None = None
) -> FastAPI:
    app = new_app(rt, worker=worker, setup_link=setup_link, error_page=error_page)
    install_api(app)
    install_pages(app)
    return app
