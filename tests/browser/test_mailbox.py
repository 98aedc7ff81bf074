"""The Mailbox page in Chromium: the Add Sender dialog, test emails, the default sender."""

import re
from collections.abc import Callable
from email import message_from_bytes, policy
from typing import Any

from playwright.sync_api import Dialog, Page, expect

from postdesk.services.senders import accounts as service
from tests.browser.conftest import LiveSite
from tests.support.smtp import SmtpTestServer

ServerFactory = Callable[..., SmtpTestServer]
BANNER = "Mail service is not configured"
CODE = "authorization-code-7731"


def add_sender(live: LiveSite, **fields: Any) -> service.SenderView:
    data = {
        "smtp_host": "smtp.example.com",
        "port": 587,
        "encryption": "tls",
        "address": "reports@example.com",
        "display_name": "Reports",
        "password": CODE,
        **fields,
    }
    return service.create_sender(live.rt, data)


def fill_sender(page: Page, server: SmtpTestServer, password: str) -> None:
    page.get_by_label("Mail Server (SMTP)").fill(server.host)
    page.get_by_label("Port").fill(str(server.port))
    page.get_by_label("Encryption").select_option(label="No Encryption")
    page.get_by_label("Sender Address").fill("reports@example.com")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Displayed Name").fill("BI Reports")


def send_test(page: Page, recipient: str = "ops@example.com") -> None:
    toggle = page.get_by_role("button", name="Send Test Email")
    if toggle.is_visible():
        toggle.click()
    page.get_by_label("Recipient").fill(recipient)
    page.get_by_role("button", name="Send", exact=True).click()


def test_add_a_sender_from_a_preset_test_it_and_save_it(
    admin_page: Page, live: LiveSite, smtp_server: ServerFactory
) -> None:
    page = admin_page
    server = smtp_server(credentials=("reports@example.com", CODE))
    page.get_by_role("button", name="Add Sender").click()
    dialog = page.get_by_role("dialog", name="Add Sender")
    expect(dialog).to_be_visible()

    page.get_by_label("Provider").select_option(label="QQ Mail")
    expect(page.get_by_label("Mail Server (SMTP)")).to_have_value("smtp.qq.com")
    expect(page.get_by_label("Port")).to_have_value("465")
    expect(page.get_by_label("Encryption")).to_have_value("ssl")
    expect(page.locator("#provider-help")).to_contain_text("authorization code")
    page.get_by_label("Encryption").select_option(label="TLS Encryption")
    expect(page.get_by_label("Port")).to_have_value("587")  # the usual port follows

    fill_sender(page, server, CODE)
    expect(page.get_by_label("Port")).to_have_value(str(server.port))  # not a usual port
    expect(page.get_by_label("Recipient")).to_be_hidden()
    page.get_by_role("button", name="Send Test Email").click()
    expect(page.get_by_label("Recipient")).to_be_focused()
    expect(page.get_by_role("button", name="Send Test Email")).to_be_hidden()
    send_test(page)
    message_id = page.locator("#test-message-id")
    expect(message_id).to_be_visible()
    [received] = server.messages
    mail = message_from_bytes(received.content, policy=policy.default)
    expect(message_id).to_have_text(mail["Message-ID"])
    assert received.rcpt_tos == ["ops@example.com"]
    expect(dialog).to_be_visible()  # the result shows in the open dialog
    expect(page.get_by_label("Password", exact=True)).to_have_value(CODE)
    assert service.list_senders(live.rt) == []  # nothing saved by the test

    page.get_by_role("button", name="OK").click()
    expect(page.get_by_role("status").filter(has_text="Sender added.")).to_be_visible()
    expect(dialog).to_be_hidden()
    row = page.locator("tr", has_text="reports@example.com")
    expect(row).to_contain_text(f"127.0.0.1:{server.port}")
    expect(row).to_contain_text("No Encryption")
    [saved] = service.list_senders(live.rt)
    assert saved.has_password and saved.display_name == "BI Reports"


def test_failing_test_emails_show_their_diagnosis_in_the_open_dialog(
    admin_page: Page, live: LiveSite, smtp_server: ServerFactory, closed_port: int
) -> None:
    page = admin_page
    server = smtp_server(credentials=("reports@example.com", CODE))
    page.get_by_role("button", name="Add Sender").click()
    page.get_by_label("Provider").select_option(label="NetEase 163 Mail")
    fill_sender(page, server, "my-account-password")
    send_test(page)
    result = page.locator("#test-result")
    expect(page.locator("#test-code")).to_have_text("smtp_auth_failed")
    expect(result).to_contain_text("(SMTP 535)")
    expect(result).to_contain_text("535 5.7.8")
    expect(page.locator("#test-hint")).to_contain_text("authorization code")
    expect(page.get_by_role("dialog", name="Add Sender")).to_be_visible()
    assert server.messages == []

    page.get_by_label("Port").fill(str(closed_port))
    page.get_by_label("Recipient").press("Enter")  # Enter in Recipient sends again
    expect(page.locator("#test-code")).to_have_text("smtp_connect_failed")
    expect(page.locator("#test-hint")).to_contain_text("firewall")
    expect(page.get_by_label("Password", exact=True)).to_have_value("my-account-password")
    assert service.list_senders(live.rt) == []


def test_errors_show_next_to_the_fields_and_keep_the_typed_password(
    admin_page: Page, live: LiveSite
) -> None:
    page = admin_page
    page.get_by_role("button", name="Add Sender").click()
    page.get_by_label("Mail Server (SMTP)").fill("smtp.example.com")
    page.get_by_label("Port").fill("70000")
    page.get_by_label("Sender Address").fill("reports@example.com")
    page.get_by_label("Password", exact=True).fill("kept-secret")
    page.get_by_label("Displayed Name").press("Enter")  # Enter in a field means OK
    expect(page.locator("#sender-display-name-error")).to_have_text(
        "the displayed name is required"
    )
    expect(page.locator("#sender-port-error")).to_have_text("the port must be between 1 and 65535")
    expect(page.get_by_label("Port")).to_be_focused()
    expect(page.get_by_label("Password", exact=True)).to_have_value("kept-secret")
    expect(page.get_by_label("Mail Server (SMTP)")).to_have_value("smtp.example.com")
    expect(page.get_by_role("dialog", name="Add Sender")).to_be_visible()
    assert service.list_senders(live.rt) == []


def test_the_password_field_says_when_it_must_be_typed_again(
    admin_page: Page, live: LiveSite
) -> None:
    page = admin_page
    saved = add_sender(live)
    page.reload()
    page.get_by_role("button", name="Edit reports@example.com").click()
    host, password = (
        page.get_by_label("Mail Server (SMTP)"),
        page.get_by_label("Password", exact=True),
    )
    again, unencrypted = (
        page.locator("#sender-password-rebind"),
        page.locator("#sender-password-plain"),
    )
    host.fill("SMTP.Example.com")  # the same server
    expect(again).to_be_hidden()
    host.fill("smtp.elsewhere.example")
    expect(again).to_be_visible()
    expect(again).to_contain_text("enter the password again")
    password.fill(CODE)
    expect(again).to_be_hidden()
    password.fill("")
    host.fill("smtp.example.com")
    page.get_by_label("Sender Address").fill("alerts@example.com")  # also the login
    expect(again).to_be_visible()
    page.get_by_label("Sender Address").fill("reports@example.com")
    expect(again).to_be_hidden()
    expect(unencrypted).to_be_hidden()

    page.get_by_label("Encryption").select_option(label="No Encryption")
    expect(unencrypted).to_be_visible()
    expect(unencrypted).to_contain_text("crosses the network unencrypted")
    expect(again).to_be_visible()
    page.get_by_role("button", name="OK").click()  # the server refuses it the same way
    expect(page.locator("#sender-password-error")).to_contain_text("enter the password again")
    expect(again).to_be_hidden()  # the field's error says it now
    expect(unencrypted).to_be_visible()
    assert service.get_sender(live.rt, saved.id) == saved


def test_the_default_sender_and_the_banner(admin_page: Page, live: LiveSite) -> None:
    page = admin_page
    add_sender(live)
    page.reload()
    banner = page.locator("#unconfigured-banner")
    expect(banner).to_contain_text(BANNER)
    page.get_by_label("System Default Sender").select_option(label="Reports <reports@example.com>")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("System default sender saved.")
    expect(banner).to_be_hidden()
    expect(page.locator("tr", has_text="reports@example.com")).to_contain_text("Default")

    page.get_by_label("System Default Sender").select_option(label="None")
    page.get_by_role("button", name="Save").click()
    expect(banner).to_contain_text(BANNER)
    assert not service.get_mail_settings(live.rt).configured


def test_deleting_the_default_asks_and_warns(admin_page: Page, live: LiveSite) -> None:
    page = admin_page
    saved = add_sender(live)
    service.set_default_sender(live.rt, saved.id)
    page.reload()
    expect(page.locator("#unconfigured-banner")).to_have_count(0)
    page.get_by_role("button", name="Delete reports@example.com").click()
    confirm = page.get_by_role("dialog", name="Delete Sender")
    expect(confirm).to_contain_text("This is the System Default Sender.")
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    assert len(service.list_senders(live.rt)) == 1
    page.get_by_role("button", name="Delete reports@example.com").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("It was the system default sender")
    expect(page.locator("#unconfigured-banner")).to_contain_text(BANNER)
    expect(page.get_by_text("No senders yet — add one")).to_be_visible()


def test_the_dialog_by_keyboard(admin_page: Page, live: LiveSite) -> None:
    page = admin_page
    saved = add_sender(live, username="svc-login")
    page.reload()
    opener = page.get_by_role("button", name="Add Sender")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Add Sender")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.activeElement.closest('dialog')?.id") == "sender-dialog"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    edit = page.get_by_role("button", name="Edit reports@example.com")
    edit.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Edit Sender")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Displayed Name")).to_have_value("Reports")
    expect(page.get_by_label("Login Name")).to_have_value("svc-login")
    password = page.get_by_label("Password", exact=True)
    expect(password).to_have_value("")
    expect(password).to_have_attribute("placeholder", "unchanged")
    page.get_by_label("Displayed Name").fill("Renamed")
    page.get_by_role("link", name="Cancel").press("Enter")
    expect(dialog).to_be_hidden()
    expect(edit).to_be_focused()
    assert service.get_sender(live.rt, saved.id).display_name == "Reports"  # cancelled

    edit.press("Enter")
    page.get_by_label("Displayed Name").fill("Renamed")
    page.get_by_role("button", name="OK").click()
    expect(page.get_by_role("status")).to_have_text("Sender saved.")
    stored = service.get_sender(live.rt, saved.id)
    assert stored.display_name == "Renamed" and stored.has_password


def test_a_hostile_display_name_stays_text(admin_page: Page, live: LiveSite) -> None:
    page = admin_page
    alerts: list[str] = []

    def refuse(dialog: Dialog) -> None:
        alerts.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    name = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    saved = add_sender(live, display_name=name)
    page.reload()
    expect(page.locator(f'tr[data-sender-id="{saved.id}"] td').nth(1)).to_have_text(name)
    page.get_by_role("button", name="Edit reports@example.com").click()
    expect(page.get_by_label("Displayed Name")).to_have_value(name)
    expect(page.locator("#sender-dialog img")).to_have_count(0)
    assert page.locator("main script").count() == 0
    assert alerts == []


def test_the_page_and_the_dialog_fit_a_phone(phone_page: Page, live: LiveSite) -> None:
    page = phone_page
    add_sender(live, address="a-rather-long-sender-address-for-reports@subsidiary.example.com")
    add_sender(live, address="alerts@example.com", display_name="Alerts")
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_role("button", name="Add Sender")).to_be_in_viewport()
    page.get_by_role("button", name="Add Sender").click()
    dialog = page.get_by_role("dialog", name="Add Sender")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ok = page.get_by_role("button", name="OK")
    expect(ok).to_be_in_viewport()  # the footer stays in reach while the form scrolls
    assert re.match(r"^\d+$", page.get_by_label("Port").input_value())
