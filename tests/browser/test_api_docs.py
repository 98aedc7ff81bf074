"""The interactive API docs in a real browser: Swagger UI renders every operation from
the installed package, under the strict Content-Security-Policy, asking nothing of any
host but postdesk's own."""

from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request, expect

from tests.browser.conftest import LiveSite


def test_the_api_docs_render_offline_under_the_site_policy(
    anonymous_page: Page, live: LiveSite
) -> None:
    page = anonymous_page
    hosts: set[str] = set()
    refused: list[str] = []

    def record_request(request: Request) -> None:
        hosts.add(urlsplit(request.url).netloc)

    def record_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            refused.append(message.text)

    page.on("request", record_request)
    page.on("console", record_console)
    answer = page.goto(live.url("/api/docs"))
    assert answer is not None
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    # The operations of the REST API, rendered by Swagger UI from the OpenAPI document.
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/messages").first).to_be_visible()
    expect(page.locator(".opblock").nth(10)).to_be_visible()
    assert hosts == {urlsplit(live.url("/")).netloc}
    assert refused == []
