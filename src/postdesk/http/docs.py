"""The interactive API docs at ``/api/docs``: Swagger UI from an installed package
(``swagger-ui-bundle-v2``), never from a CDN, under the site's Content-Security-Policy.

The page holds no inline script or style: Swagger UI's files are served from the
package's folder and a small start script from here, so a machine without internet
access shows the docs, and no third party's script runs next to an administrator's
session.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/api/docs"
_ASSETS = f"{DOCS_PATH}/assets"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>postdesk REST API</title>
<link rel="stylesheet" href="{_ASSETS}/swagger-ui.css">
</head>
<body>
<main id="swagger-ui"></main>
<script src="{_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/start.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve the docs page, its start script and Swagger UI's files on ``app``."""
    start = f'window.ui = SwaggerUIBundle({{url: "{openapi_url}", dom_id: "#swagger-ui"}});\n'

    def docs_page() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    def start_script() -> Response:
        return Response(start, media_type="text/javascript")

    app.add_api_route(DOCS_PATH, docs_page, include_in_schema=False)
    app.add_api_route(f"{DOCS_PATH}/start.js", start_script, include_in_schema=False)
    app.mount(_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="api-docs")
