"""A new administrator's first hour, end to end: ``postdesk serve`` as a process, Chromium.

The setup link that serve prints creates the administrator; a QQ-preset sender pointed at
a local implicit-TLS server (its CA pasted under Advanced) passes Send Test Email and
becomes the System Default Sender; an application sends a mail through the REST API
with a send token from the CLI; the embedded worker delivers it; the Mail Sending
Record finds it by its receiver.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.cli.test_cli import Cli
from tests.support import free_port
from tests.support.processes import ServeProcess, post_json, wait_until
from tests.support.smtp import SmtpTestServer

ServerFactory = Callable[..., SmtpTestServer]
ADDRESS = "bi-reports@qq.com"
AUTH_CODE = "qq-authorization-code-5521"
MAIL = {
    "to": ["alice@example.org"],
    "subject": "Daily sales, 27 November",
    "html": "<p>Sales are <b>up</b>.</p>",
    "template_name": "Daily Sales Report",
    "resources": ["/reports/sales/daily.cpt"],
}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Cli, ServeProcess, str]]:
    """``postdesk serve`` on a fresh home: (the CLI on that home, the process, setup link)."""
    cli = Cli(tmp_path / "home")
    # The local SMTP server listens on a port the OS picks, outside the ports a test mail
    # may go to by default: the operator opens them all, as POSTDESK_TEST_MAIL_ALLOWED_PORTS says.
    cli.env["POSTDESK_TEST_MAIL_ALLOWED_PORTS"] = "*"
    server = ServeProcess(cli.env, tmp_path / "serve.log", free_port())
    try:
        server.wait_ready()
        [link] = [word for word in server.logs().split() if "/setup?token=" in word]
        yield cli, server, link
        server.stop()
    finally:
        server.close()
    assert "Traceback" not in server.log_path.read_text()


def test_first_run_setup_sender_default_send_and_find_the_record(
    anonymous_page: Page, serve: tuple[Cli, ServeProcess, str], smtp_server: ServerFactory
) -> None:
    cli, process, link = serve
    server = smtp_server(tls="implicit", credentials=(ADDRESS, AUTH_CODE))
    page = anonymous_page
    page.set_default_timeout(15_000)

    create_the_administrator(page, link)
    expect(page.get_by_text("Mail service is not configured", exact=True)).to_be_visible()
    add_a_tested_qq_sender(page, server)
    choose_the_default(page)
    assert len(server.messages) == 1  # the test mail

    token = cli("token", "create", "--name", "reports", "--scope", "send").stdout.strip()
    post_json(f"{process.url}/api/v1/messages", MAIL, token)
    wait_until(lambda: len(server.messages) == 2, timeout=30, what="the worker to deliver")
    assert server.messages[1].rcpt_tos == ["alice@example.org"]

    page.get_by_role("link", name="Mail Sending Record").first.click()
    page.get_by_label("Receiver Email").fill("alice@")
    page.get_by_role("button", name="Search").click()
    row = page.locator("tbody tr", has_text="Daily Sales Report")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(ADDRESS)
    expect(row).to_contain_text("Sent")
    expect(row).to_contain_text("/reports/sales/daily.cpt")
    expect(page.locator("tbody tr", has_text="Test mail")).to_have_count(0)  # ops@ only


def create_the_administrator(page: Page, link: str) -> None:
    page.goto(link)
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("a long passphrase")
    page.get_by_role("button", name="Create administrator").click()
    page.get_by_role("link", name="Go to Mailbox").click()
    expect(page.get_by_role("heading", name="Mailbox", exact=True)).to_be_visible()


def add_a_tested_qq_sender(page: Page, server: SmtpTestServer) -> None:
    page.get_by_role("button", name="Add Sender").click()
    page.get_by_label("Provider").select_option(label="QQ Mail")
    expect(page.get_by_label("Encryption")).to_have_value("ssl")
    page.get_by_label("Mail Server (SMTP)").fill(server.host)
    page.get_by_label("Port").fill(str(server.port))
    page.get_by_label("Sender Address").fill(ADDRESS)
    page.get_by_label("Password", exact=True).fill(AUTH_CODE)
    page.get_by_label("Displayed Name").fill("BI Reports")
    page.get_by_text("Advanced").click()
    page.get_by_label("CA Certificate (PEM)").fill(server.ca_pem)
    toggle = page.get_by_role("button", name="Send Test Email")
    if toggle.is_visible():
        toggle.click()
    page.get_by_label("Recipient").fill("ops@example.com")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#test-message-id")).to_be_visible()
    page.get_by_role("button", name="OK").click()
    expect(page.locator("tr", has_text=ADDRESS)).to_contain_text("SSL Encryption")


def choose_the_default(page: Page) -> None:
    page.get_by_label("System Default Sender").select_option(label=f"BI Reports <{ADDRESS}>")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Mail service is not configured", exact=True)).to_have_count(0)
