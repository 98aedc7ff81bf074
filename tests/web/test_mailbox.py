"""The Mailbox page without a browser: every basic flow as plain forms, as without script."""

import re
from collections.abc import Callable
from email import message_from_bytes, policy
from html import escape
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery.drain import drain_once
from postdesk.services.delivery.queue_health import held_senders
from postdesk.services.messages.submission import submit_message
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as service
from postdesk.services.senders.test_mail import send_test_mail
from tests.support.smtp import LOGIN_THROTTLED_REPLY, SmtpTestServer

ServerFactory = Callable[..., SmtpTestServer]
BANNER = "Mail service is not configured"
SECRET = "typed-Secret-9931"
FRAGMENT = {"X-Postdesk-Fragment": "1"}


def form(server: SmtpTestServer | None = None, **fields: str) -> dict[str, str]:
    """The Add Sender form as a browser posts it."""
    data = {
        "preset": "",
        "smtp_host": server.host if server else "smtp.example.com",
        "port": str(server.port) if server else "587",
        "encryption": "none" if server else "tls",
        "address": "reports@example.com",
        "password": "",
        "display_name": "Reports",
        "username": "",
        "timeout_s": "5",
        "max_per_minute": "",
        "ca_cert_pem": "",
    }
    data.update(fields)
    return data


def post(site: TestClient, path: str, csrf: str, data: dict[str, str], **kw: Any) -> Response:
    response: Response = site.post(path, data={**data, "csrf_token": csrf}, **kw)
    return response


def field_error(html: str, field_id: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    assert found, f"no error shown for {field_id}"
    return found.group(1)


def test_an_empty_mailbox_says_what_to_do(site: TestClient, logged_in: str) -> None:
    page = site.get("/mailbox")
    assert page.status_code == 200
    assert BANNER in page.text
    assert "No senders yet — add one" in page.text
    assert ">Add Sender</button>" in page.text
    assert "System Management</li><li>System Setting</li>" in page.text
    assert "<dialog" not in page.text  # no dialog until asked for
    assert '<option value="" selected>None</option>' in page.text


def test_the_add_dialog_opens_without_script_with_labelled_fields(
    site: TestClient, logged_in: str
) -> None:
    page = site.get("/mailbox?dialog=add")
    assert page.status_code == 200
    dialog = page.text.split('<dialog id="sender-dialog"', 1)[1].split("</dialog>", 1)[0]
    assert re.match(r"[^>]*\bopen\b", dialog)
    assert '<h2 id="sender-dialog-title">Add Sender</h2>' in dialog
    labels = dict(re.findall(r'<label for="([^"]+)">([^<]+)</label>', dialog))
    for text in (
        "Mail Server (SMTP)",
        "Port",
        "Encryption",
        "Sender Address",
        "Password",
        "Displayed Name",
        "Recipient",
    ):
        assert text in labels.values(), text
    for label in ("SSL Encryption", "TLS Encryption", "No Encryption"):
        assert f">{label}</option>" in dialog
    assert 'value="25"' in dialog  # the SPEC's defaults: port 25 with TLS
    assert re.search(r'<option value="tls" data-port="587" selected>', dialog)
    assert "QQ Mail" in dialog and 'data-host="smtp.qq.com"' in dialog
    assert 'formaction="/mailbox/test"' in dialog


def test_adding_a_sender_lists_it_without_its_password(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    done = post(
        site,
        "/mailbox/senders",
        logged_in,
        form(encryption="ssl", port="465", password=SECRET, display_name="BI Reports"),
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/mailbox?notice=sender_added_unconfigured"
    [saved] = service.list_senders(rt)
    assert (saved.smtp_host, saved.port, saved.encryption) == ("smtp.example.com", 465, "ssl")
    assert saved.has_password
    page = site.get(done.headers["location"])
    assert "Sender added. Choose it as the System Default Sender" in page.text
    row = page.text.split(f'<tr data-sender-id="{saved.id}"', 1)[1].split("</tr>", 1)[0]
    assert "reports@example.com" in row and "BI Reports" in row
    assert "smtp.example.com:465" in row and "SSL Encryption" in row
    assert "Default" not in row
    assert SECRET not in page.text
    assert BANNER in page.text  # added, but no default yet


def test_a_sender_held_after_a_throttled_login_shows_until_when_and_why(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", SECRET), auth_throttle=1)
    added = post(site, "/mailbox/senders", logged_in, form(server, password=SECRET))
    assert added.status_code == 303
    [saved] = service.list_senders(rt)
    service.set_default_sender(rt, saved.id)
    submit_message(
        rt,
        {"to": ["alice@example.org"], "subject": "Hi", "text": "Hi."},
        caller=SYSTEM,
        client_ip=None,
    )
    drain_once(rt, worker_id="w1", limit=10)
    [held] = held_senders(rt)

    row = site.get("/mailbox").text.split(f'<tr data-sender-id="{saved.id}"', 1)[1]
    row = row.split("</tr>", 1)[0]

    assert '<span class="badge pending">Paused</span>' in row
    hold = row.split(f'id="sender-hold-{saved.id}">', 1)[1].split("</span>", 1)[0]
    until = held.held_until.strftime("%Y-%m-%d %H:%M")
    assert hold == (
        f"Sending paused until {until} UTC: <code>smtp_auth_throttled</code> "
        f"{escape(LOGIN_THROTTLED_REPLY)}"
    )
    service.update_sender(rt, saved.id, {"display_name": "Reports"})  # an edit lifts it
    assert "Paused" not in site.get("/mailbox").text


def test_a_preset_fills_what_was_left_empty_without_script(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    chosen = form(preset="qq", smtp_host="", port="25", encryption="tls", password="code")
    assert post(site, "/mailbox/senders", logged_in, chosen).status_code == 303
    [saved] = service.list_senders(rt)
    assert (saved.smtp_host, saved.port, saved.encryption) == ("smtp.qq.com", 465, "ssl")


def test_errors_show_next_to_their_fields_with_the_values_kept(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    bad = form(port="70000", address="not an address", display_name="  ", password=SECRET)
    page = post(site, "/mailbox/senders", logged_in, bad)
    assert page.status_code == 422
    html = page.text
    assert field_error(html, "sender-port") == "the port must be between 1 and 65535"
    assert field_error(html, "sender-display-name") == "the displayed name is required"
    assert field_error(html, "sender-address")
    assert "The sender was not saved: correct the fields marked below." in html
    assert re.search(r'id="sender-port"[^>]*aria-invalid="true"', html)
    assert re.search(r'id="sender-port"[^>]*aria-describedby="[^"]*sender-port-error', html)
    assert re.search(r'id="sender-port" name="port" value="70000"', html)
    assert 'value="not an address"' in html
    assert 'value="smtp.example.com"' in html
    assert re.search(r"<dialog[^>]*\bopen\b", html)  # the dialog stays open
    assert SECRET not in html
    assert "Type the password again" in html
    assert service.list_senders(rt) == []


def test_a_duplicate_address_is_shown_at_the_address(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    assert post(site, "/mailbox/senders", logged_in, form()).status_code == 303
    again = post(site, "/mailbox/senders", logged_in, form(display_name="Other"))
    assert again.status_code == 409
    assert "already exists" in field_error(again.text, "sender-address")
    assert len(service.list_senders(rt)) == 1


def test_editing_without_a_password_keeps_the_stored_one(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", SECRET))
    post(site, "/mailbox/senders", logged_in, form(server, password=SECRET))
    [saved] = service.list_senders(rt)

    dialog = site.get(f"/mailbox?dialog=edit&sender={saved.id}").text
    assert '<h2 id="sender-dialog-title">Edit Sender</h2>' in dialog
    assert f'action="/mailbox/senders/{saved.id}"' in dialog
    assert re.search(r'id="sender-password"[^>]*value=""[^>]*placeholder="unchanged"', dialog)
    assert SECRET not in dialog
    assert f'value="{server.port}"' in dialog

    edited = form(server, display_name="Renamed", password="")
    done = post(site, f"/mailbox/senders/{saved.id}", logged_in, edited)
    assert done.headers["location"] == "/mailbox?notice=sender_saved"
    assert service.get_sender(rt, saved.id).display_name == "Renamed"
    send_test_mail(rt, sender_id=saved.id, to="alice@example.org")  # still logs in
    assert server.logins == [("PLAIN", "reports@example.com")]
    assert b"Renamed" in server.messages[0].content

    cleared = form(server, clear_password="1")
    assert post(site, f"/mailbox/senders/{saved.id}", logged_in, cleared).status_code == 303
    assert not service.get_sender(rt, saved.id).has_password


def test_default_sender_set_and_cleared_with_the_banner(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    post(site, "/mailbox/senders", logged_in, form())
    [saved] = service.list_senders(rt)
    done = post(site, "/mailbox/default", logged_in, {"default_sender_id": str(saved.id)})
    assert done.headers["location"] == "/mailbox?notice=default_saved"
    assert service.get_mail_settings(rt).default_sender_id == saved.id
    page = site.get(done.headers["location"]).text
    assert BANNER not in page
    assert "System default sender saved." in page
    assert f'<option value="{saved.id}" selected>Reports &lt;reports@example.com&gt;' in page
    assert '<span class="badge default">Default</span>' in page

    cleared = post(site, "/mailbox/default", logged_in, {"default_sender_id": ""})
    assert cleared.headers["location"] == "/mailbox?notice=default_cleared"
    assert not service.get_mail_settings(rt).configured
    page = site.get(cleared.headers["location"]).text
    assert BANNER in page
    assert "System default sender cleared." in page


def test_deleting_asks_first_and_the_default_warns(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    post(site, "/mailbox/senders", logged_in, form())
    post(site, "/mailbox/senders", logged_in, form(address="alerts@example.com"))
    first, second = service.list_senders(rt)
    service.set_default_sender(rt, first.id)

    confirm = site.get(f"/mailbox?dialog=delete&sender={second.id}").text
    assert f'action="/mailbox/senders/{second.id}/delete"' in confirm
    assert "alerts@example.com" in confirm
    assert "This is the System Default Sender." not in confirm
    confirm = site.get(f"/mailbox?dialog=delete&sender={first.id}").text
    assert "This is the System Default Sender." in confirm
    assert len(service.list_senders(rt)) == 2  # asking deletes nothing

    done = post(site, f"/mailbox/senders/{second.id}/delete", logged_in, {})
    assert done.headers["location"] == "/mailbox?notice=sender_deleted"
    done = post(site, f"/mailbox/senders/{first.id}/delete", logged_in, {})
    assert done.headers["location"] == "/mailbox?notice=default_deleted"
    assert service.list_senders(rt) == []
    page = site.get(done.headers["location"]).text
    assert BANNER in page
    assert "It was the system default sender" in page
    gone = post(site, f"/mailbox/senders/{first.id}/delete", logged_in, {})
    assert gone.headers["location"] == "/mailbox?notice=sender_missing"


def test_forms_without_the_csrf_token_change_nothing(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    post(site, "/mailbox/senders", logged_in, form())
    [saved] = service.list_senders(rt)
    for path, data in (
        ("/mailbox/senders", form(address="other@example.com")),
        (f"/mailbox/senders/{saved.id}", form(display_name="Hijacked")),
        (f"/mailbox/senders/{saved.id}/delete", {}),
        ("/mailbox/default", {"default_sender_id": str(saved.id)}),
    ):
        for token in ({}, {"csrf_token": "forged"}):
            refused = site.post(path, data={**data, **token})
            assert refused.status_code == 403, path
            assert "This form has expired or did not come from postdesk." in refused.text
    assert service.list_senders(rt) == [saved]
    assert not service.get_mail_settings(rt).configured


def test_a_test_email_from_unsaved_settings_reports_the_message_id(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", SECRET))
    data = form(server, password=SECRET, recipient="alice@example.org")
    page = post(site, "/mailbox/test", logged_in, data)
    assert page.status_code == 200
    [received] = server.messages
    assert received.rcpt_tos == ["alice@example.org"]
    message_id = message_from_bytes(received.content, policy=policy.default)["Message-ID"]
    html = page.text
    assert "Test email sent to alice@example.org." in html
    assert f'<code id="test-message-id">{escape(message_id)}</code>' in html
    assert re.search(r"<dialog[^>]*\bopen\b", html)
    assert 'value="alice@example.org"' in html
    assert SECRET not in html
    assert service.list_senders(rt) == []  # testing saves nothing


def test_a_failing_test_email_shows_the_diagnosis(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory, closed_port: int
) -> None:
    server = smtp_server(credentials=("reports@example.com", "the-right-code"))
    data = form(server, password=SECRET, recipient="alice@example.org")
    html = post(site, "/mailbox/test", logged_in, data).text
    assert '<code id="test-code">smtp_auth_failed</code> (SMTP 535)' in html
    assert "authorization code" in html
    assert SECRET not in html
    assert server.messages == []

    unreachable = form(smtp_host="127.0.0.1", port=str(closed_port), encryption="none")
    html = post(site, "/mailbox/test", logged_in, {**unreachable, "recipient": "a@b.org"}).text
    assert '<code id="test-code">smtp_connect_failed</code>' in html
    assert "firewall" in html
    assert service.list_senders(rt) == []


def test_testing_an_edit_uses_the_stored_password(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", SECRET))
    post(site, "/mailbox/senders", logged_in, form(server, password=SECRET))
    [saved] = service.list_senders(rt)
    data = form(server, display_name="Not Saved Yet", recipient="bob@example.org")
    html = post(site, "/mailbox/test", logged_in, {**data, "sender_id": str(saved.id)}).text
    assert "Test email sent to bob@example.org." in html
    assert '<h2 id="sender-dialog-title">Edit Sender</h2>' in html
    assert b"Not Saved Yet" in server.messages[0].content
    assert service.get_sender(rt, saved.id).display_name == "Reports"


def test_a_stored_password_moved_to_another_server_is_asked_for_at_its_field(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", SECRET))
    other = smtp_server(
        host="127.0.0.2", port=server.port, credentials=("reports@example.com", SECRET)
    )
    post(site, "/mailbox/senders", logged_in, form(server, password=SECRET))
    [saved] = service.list_senders(rt)
    moved = form(other, recipient="bob@example.org", sender_id=str(saved.id))

    for path, said in (
        ("/mailbox/test", "The test email was not sent"),
        (f"/mailbox/senders/{saved.id}", "The sender was not saved"),
    ):
        page = post(site, path, logged_in, moved)
        assert page.status_code == 422
        html = page.text
        assert field_error(html, "sender-password").startswith(
            "the mail server changed: enter the password again"
        )
        assert re.search(r'id="sender-password"[^>]*aria-invalid="true"', html)
        assert said in html
        assert "A stored password is sent only to the server and login it was saved for" in html
        assert 'value="127.0.0.2"' in html  # what was typed stays
        assert SECRET not in html
    assert (other.connections, service.get_sender(rt, saved.id)) == (0, saved)

    html = post(site, "/mailbox/test", logged_in, {**moved, "password": SECRET}).text
    assert "Test email sent to bob@example.org." in html
    assert other.logins == [("PLAIN", "reports@example.com")]


def test_no_encryption_with_a_password_warns_in_the_dialog_and_the_result(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", SECRET))
    warning = re.compile(r'<p class="notice warning" id="sender-password-plain"( hidden)?>')
    post(site, "/mailbox/senders", logged_in, form(server, password=SECRET))
    post(site, "/mailbox/senders", logged_in, form(address="tls@example.com", password=SECRET))
    plain, secure = service.list_senders(rt)
    shown = warning.search(site.get(f"/mailbox?dialog=edit&sender={plain.id}").text)
    assert shown and shown.group(1) is None
    hidden = warning.search(site.get(f"/mailbox?dialog=edit&sender={secure.id}").text)
    assert hidden and hidden.group(1) == " hidden"

    data = form(server, recipient="bob@example.org", sender_id=str(plain.id))
    html = post(site, "/mailbox/test", logged_in, data).text
    assert "Test email sent to bob@example.org." in html
    result = re.search(r'id="test-warning-password_unencrypted"[^>]*>\s*<p>([^<]*)</p>', html)
    assert result and "crossed the network unencrypted" in result.group(1)


def test_a_test_email_needs_a_recipient(site: TestClient, logged_in: str) -> None:
    page = post(site, "/mailbox/test", logged_in, form(recipient=""))
    assert page.status_code == 422
    assert field_error(page.text, "test-recipient")
    assert "The test email was not sent" in page.text


def test_the_page_script_gets_only_the_dialog_or_where_to_go(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    bad = post(site, "/mailbox/senders", logged_in, form(display_name=""), headers=FRAGMENT)
    assert bad.status_code == 422
    assert bad.headers["x-postdesk-fragment"] == "sender"
    assert bad.text.lstrip().startswith("<dialog")
    assert "<html" not in bad.text
    good = post(site, "/mailbox/senders", logged_in, form(), headers=FRAGMENT)
    assert good.json() == {"location": "/mailbox?notice=sender_added_unconfigured"}
    [saved] = service.list_senders(rt)
    edit = site.get(f"/mailbox?dialog=edit&sender={saved.id}", headers=FRAGMENT)
    assert edit.headers["x-postdesk-fragment"] == "sender"
    assert "Edit Sender" in edit.text and "<html" not in edit.text
    missing = site.get("/mailbox?dialog=edit&sender=999", headers=FRAGMENT)
    assert missing.json() == {"location": "/mailbox?notice=sender_missing"}


def test_notices_come_only_from_fixed_texts(site: TestClient, logged_in: str) -> None:
    page = site.get("/mailbox?notice=<script>alert(1)</script>")
    assert page.status_code == 200
    assert "alert(1)" not in page.text
    assert 'id="mailbox-notice"' not in page.text


def test_sender_data_is_escaped(site: TestClient, logged_in: str) -> None:
    name = '<script>alert(1)</script>"><img src=x>'
    assert post(site, "/mailbox/senders", logged_in, form(display_name=name)).status_code == 303
    html = site.get("/mailbox").text
    assert "<script>alert(1)" not in html
    assert "<img src=x>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_dialog_and_the_api_share_the_test_mail_limit(
    site: TestClient, logged_in: str, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    data = form(server, recipient="alice@example.org")
    fields = {k: v for k, v in data.items() if k in ("smtp_host", "port", "encryption")}
    body = {"sender": {**fields, "address": "r@example.com", "display_name": "R"}, "to": "a@b.org"}
    for _ in range(10):
        api = site.post("/api/v1/senders/test", json=body, headers={"X-CSRF-Token": logged_in})
        assert api.status_code == 200, api.text
    page = post(site, "/mailbox/test", logged_in, data)
    assert page.status_code == 429
    assert 1 <= int(page.headers["Retry-After"]) <= 60
    assert "Too many test mails: at most 10 a minute." in page.text
    assert re.search(r"<dialog[^>]*\bopen\b", page.text)
    assert len(server.messages) == 10


def test_the_dialog_refuses_a_metadata_address_on_its_field(
    site: TestClient, logged_in: str, rt: Runtime
) -> None:
    data = form(smtp_host="169.254.169.254", port="25", encryption="none", recipient="a@b.org")
    tested = post(site, "/mailbox/test", logged_in, data)
    assert tested.status_code == 422
    assert field_error(tested.text, "sender-host") == "is a cloud metadata address"
    saved = post(site, "/mailbox/senders", logged_in, data)
    assert saved.status_code == 422
    assert field_error(saved.text, "sender-host") == "is a cloud metadata address"
    assert service.list_senders(rt) == []
