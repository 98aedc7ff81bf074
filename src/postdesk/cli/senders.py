"""``postdesk sender …``: add, list, show, edit, delete, choose the default, send a test mail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from postdesk.cli.output import print_json, print_value, stderr, stdout
from postdesk.errors import DeliveryError, ValidationError

if TYPE_CHECKING:
    from postdesk.services.senders.test_mail import TestMailResult

# The services (and SQLAlchemy beneath them) are imported by each command when it runs:
# building the app for --help or another command must not load them.

app = typer.Typer(help="Sender accounts and the system default sender.", no_args_is_help=True)

Host = Annotated[str | None, typer.Option("--host", help="Mail server (SMTP), e.g. smtp.qq.com.")]
Port = Annotated[int | None, typer.Option("--port", help="Port (default 25, or the preset's).")]
EncryptionOpt = Annotated[
    str | None, typer.Option("--encryption", help="ssl (465), tls = STARTTLS (587/25) or none.")
]
DisplayName = Annotated[str | None, typer.Option("--display-name", help="Displayed name (From).")]
Username = Annotated[str | None, typer.Option("--username", help="Login name if not the address.")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password / authorization code from stdin."),
]
CaCert = Annotated[
    Path | None,
    typer.Option("--ca-cert", help="PEM file of CA certificates to trust for this server."),
]
MaxPerMinute = Annotated[
    int | None, typer.Option("--max-per-minute", help="Send-rate cap (0 removes the cap).")
]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Seconds to wait for the server.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("add")
def add(
    address: Annotated[str, typer.Option("--address", help="Sender address.")],
    display_name: Annotated[str, typer.Option("--display-name", help="Displayed name (From).")],
    host: Host = None,
    port: Port = None,
    encryption: EncryptionOpt = None,
    username: Username = None,
    password_stdin: PasswordStdin = False,
    ca_cert: CaCert = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Provider preset (see postdesk providers).")
    ] = None,
    max_per_minute: MaxPerMinute = None,
    timeout: Timeout = None,
    test_to: Annotated[
        str | None,
        typer.Option("--test-to", help="Send a test mail here first; save only if it arrives."),
    ] = None,
) -> None:
    """Add a sender and print its id."""
    from postdesk.services.runtime import runtime
    from postdesk.services.senders import accounts as service
    from postdesk.services.senders.test_mail import send_test_mail

    fields = _fields(
        host,
        port,
        encryption,
        address,
        display_name,
        username,
        password_stdin,
        ca_cert,
        max_per_minute,
        timeout,
    )
    if preset:
        fields["preset"] = preset
    with runtime() as rt:
        if test_to:
            result = send_test_mail(rt, to=test_to, unsaved=fields)
            stderr.print(f"test mail accepted by the server: {escape(result.message_id)}")
            _print_warnings(result)
        sender = service.create_sender(rt, fields)
    print_value(sender.id)


@app.command("list")
def list_(as_json: Json = False) -> None:
    """List the senders; * marks the system default."""
    from rich.table import Table

    from postdesk.services.runtime import runtime
    from postdesk.services.senders import accounts as service

    with runtime() as rt:
        senders = service.list_senders(rt)
    if as_json:
        print_json([s.to_dict() for s in senders])
        return
    if not senders:
        stderr.print("No senders yet — add one with: postdesk sender add")
        return
    table = Table()
    for title in ("ID", "Default", "Sender Address", "Displayed Name", "Mail Server", "Encryption"):
        table.add_column(title, overflow="fold")
    for s in senders:
        table.add_row(
            str(s.id),
            "*" if s.is_default else "",
            escape(s.address),
            escape(s.display_name),
            escape(f"{s.smtp_host}:{s.port}"),
            s.encryption,
        )
    stdout.print(table)


@app.command("show")
def show(
    sender_id: Annotated[int, typer.Argument(help="Sender id.")], as_json: Json = False
) -> None:
    """Show one sender (never its password)."""
    from postdesk.services.runtime import runtime
    from postdesk.services.senders import accounts as service

    with runtime() as rt:
        sender = service.get_sender(rt, sender_id)
    data = sender.to_dict()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        stdout.print(f"{key}: {escape(str(value))}")


@app.command("edit")
def edit(
    sender_id: Annotated[int, typer.Argument(help="Sender id.")],
    host: Host = None,
    port: Port = None,
    encryption: EncryptionOpt = None,
    address: Annotated[str | None, typer.Option("--address", help="Sender address.")] = None,
    display_name: DisplayName = None,
    username: Username = None,
    password_stdin: PasswordStdin = False,
    clear_password: Annotated[
        bool, typer.Option("--clear-password", help="Remove the stored password.")
    ] = False,
    ca_cert: CaCert = None,
    clear_ca_cert: Annotated[
        bool, typer.Option("--clear-ca-cert", help="Remove the trusted CA certificates.")
    ] = False,
    max_per_minute: MaxPerMinute = None,
    timeout: Timeout = None,
) -> None:
    """Change the options given; the stored password stays unless replaced or cleared."""
    from postdesk.services.runtime import runtime
    from postdesk.services.senders import accounts as service

    patch = _fields(
        host,
        port,
        encryption,
        address,
        display_name,
        username,
        password_stdin,
        ca_cert,
        max_per_minute,
        timeout,
    )
    if clear_password:
        patch["clear_password"] = True
    if clear_ca_cert:
        patch["ca_cert_pem"] = None
    with runtime() as rt:
        sender = service.update_sender(rt, sender_id, patch)
    stderr.print(f"updated sender {sender.id}")


@app.command("delete")
def delete(sender_id: Annotated[int, typer.Argument(help="Sender id.")]) -> None:
    """Delete a sender. Deleting the default leaves the mail service unconfigured."""
    from postdesk.services.runtime import runtime
    from postdesk.services.senders import accounts as service

    with runtime() as rt:
        was_default = service.get_mail_settings(rt).default_sender_id == sender_id
        service.delete_sender(rt, sender_id)
    stderr.print(f"deleted sender {sender_id}")
    if was_default:
        stderr.print(
            "warning: it was the system default sender; the mail service is not configured "
            "until you choose another (postdesk sender default ID)"
        )


@app.command("default")
def default(
    sender_id: Annotated[int | None, typer.Argument(help="Sender id to make the default.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Clear the default sender.")] = False,
    as_json: Json = False,
) -> None:
    """Show, set or clear the system default sender."""
    from postdesk.services.runtime import runtime
    from postdesk.services.senders import accounts as service

    if clear and sender_id is not None:
        raise ValidationError({"sender_id": "give a sender id or --clear, not both"})
    with runtime() as rt:
        if clear or sender_id is not None:
            settings = service.set_default_sender(rt, None if clear else sender_id)
        else:
            settings = service.get_mail_settings(rt)
        default_id = settings.default_sender_id
        current = service.get_sender(rt, default_id) if default_id is not None else None
    if as_json:
        print_json(settings.to_dict())
    elif current is None:
        stdout.print("System Default Sender: none — the mail service is not configured")
    else:
        stdout.print(
            f"System Default Sender: {current.id} "
            f"{escape(current.display_name)} <{escape(current.address)}>"
        )


@app.command("test")
def test(
    sender_id: Annotated[int, typer.Argument(help="Sender id.")],
    to: Annotated[str, typer.Option("--to", help="Recipient of the test mail.")],
) -> None:
    """Send the test mail now; print its Message-ID, or the diagnosis and exit 1."""
    from postdesk.services.runtime import runtime
    from postdesk.services.senders.test_mail import send_test_mail

    with runtime() as rt:
        try:
            result = send_test_mail(rt, to=to, sender_id=sender_id)
        except DeliveryError:
            stderr.print("the test mail failed:")
            raise
    print_value(result.message_id)
    stderr.print(f"test mail accepted by the server for {escape(to)} (record {result.record_id})")
    _print_warnings(result)


def _print_warnings(result: TestMailResult) -> None:
    for warning in result.warnings:
        stderr.print(f"warning: {escape(warning.message)}", highlight=False, soft_wrap=True)


def _fields(
    host: str | None,
    port: int | None,
    encryption: str | None,
    address: str | None,
    display_name: str | None,
    username: str | None,
    password_stdin: bool,
    ca_cert: Path | None,
    max_per_minute: int | None,
    timeout: float | None,
) -> dict[str, Any]:
    """The options that were given, as sender fields (absent options are left out)."""
    given = {
        "smtp_host": host,
        "port": port,
        "encryption": encryption,
        "address": address,
        "display_name": display_name,
        "username": username,
        "timeout_s": timeout,
        "max_per_minute": (max_per_minute or "") if max_per_minute is not None else None,
    }
    fields: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if password_stdin:
        fields["password"] = _read_password()
    if ca_cert is not None:
        fields["ca_cert_pem"] = _read_ca_cert(ca_cert)
    return fields


def _read_password() -> str:
    # Only the line ending the shell or `echo` adds is dropped; spaces are part of it.
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


def _read_ca_cert(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(
            {"ca_cert_pem": f"cannot read {path}: {exc.__class__.__name__}"},
            hint="Give a readable PEM file with one or more CA certificates.",
        ) from None
