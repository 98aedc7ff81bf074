"""Rendering pages: one Jinja2 environment (autoescaped) and the context every page gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from postdesk import __version__

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
STATIC_DIR = HERE / "static"


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """``template`` with ``context`` plus the version and the page session, if any."""
    page = getattr(request.state, "page", None)
    full = {"version": __version__, "page": page, **(context or {})}
    return TEMPLATES.TemplateResponse(request, template, full, status_code=status)


def redirect(path: str, **query: str | int | None) -> RedirectResponse:
    """303 See Other to a local ``path`` (POST, then redirect, then GET)."""
    params = {key: value for key, value in query.items() if value not in (None, "")}
    return RedirectResponse(f"{path}?{urlencode(params)}" if params else path, status_code=303)


def local_path(target: str | None, default: str = "/mailbox") -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
