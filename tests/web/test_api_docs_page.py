"""``/api/docs`` is served from the installed Swagger UI package with the site's CSP."""

from fastapi.testclient import TestClient

from postdesk.http.security import CONTENT_SECURITY_POLICY


def test_the_docs_page_has_no_inline_code_and_loads_only_local_files(site: TestClient) -> None:
    page = site.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "<style" not in page.text and "cdn" not in page.text.lower()
    scripts = [line.split('"')[1] for line in page.text.splitlines() if "<script src=" in line]
    assert scripts == ["/api/docs/assets/swagger-ui-bundle.js", "/api/docs/start.js"]
    for path in [*scripts, "/api/docs/assets/swagger-ui.css"]:
        answer = site.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert '"/api/v1/openapi.json"' in site.get("/api/docs/start.js").text
