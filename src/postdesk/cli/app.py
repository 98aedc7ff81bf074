"""The ``postdesk`` command: the root Typer app, its small commands and the entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from postdesk import __version__
from postdesk.cli import senders, tokens
from postdesk.cli.doctor import doctor
from postdesk.cli.errors import exit_code_for, report
from postdesk.cli.output import print_json, print_value, stderr, stdout
from postdesk.cli.records import records
from postdesk.cli.send import send
from postdesk.cli.worker import worker
from postdesk.errors import PostdeskError, ValidationError

# Each command imports the services, storage and Rich tables it needs when it runs, so
# that --version, --help and providers start at once (tests/cli/test_cli_startup.py).

app = typer.Typer(
    help="postdesk: the outgoing-mail desk of a reporting platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrators.", no_args_is_help=True)
app.add_typer(senders.app, name="sender")
app.add_typer(tokens.app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.command("doctor")(doctor)
app.command("send")(send)
app.command("records")(records)
app.command("worker")(worker)


def _version(value: bool) -> None:
    if value:
        print_value(f"postdesk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """postdesk: register senders, choose the default, send test mails, read the records."""


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8700,
) -> None:
    """Run the web UI, the REST API and the embedded worker until Ctrl-C."""
    from postdesk.cli.serve import run_server

    run_server(host, port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from postdesk.config import Settings
    from postdesk.services.runtime import migrate_database

    revision = migrate_database(Settings.from_env())
    stderr.print(f"database schema at revision {revision}")


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Option("--username", help="Administrator's login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create an administrator (the password is stored as an Argon2 hash); print its id."""
    if password_stdin:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise ValidationError(
            {"password": "no password given"},
            hint="Pipe it in with --password-stdin, or run the command on a terminal.",
        )
    from postdesk.services.access.admins import create_admin
    from postdesk.services.runtime import runtime

    with runtime() as rt:
        admin_id = create_admin(rt, username, password)
    print_value(admin_id)


@app.command("providers")
def providers(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The provider presets for --preset, with how to get their authorization codes."""
    from rich.table import Table

    from postdesk.domain.providers import PROVIDERS

    if as_json:
        print_json([p.to_dict() for p in PROVIDERS])
        return
    table = Table("Key", "Provider", "Mail Server", "Port", "Encryption", "Password", "How to")
    for p in PROVIDERS:
        table.add_row(
            p.key,
            p.name,
            p.smtp_host or "(server's IP)",
            str(p.port),
            p.encryption.value,
            "authorization code" if p.authorization_code else "account password",
            p.help,
        )
    stdout.print(table)


def main() -> None:
    """Entry point: run the app; postdesk errors become ``error:`` lines and exit codes."""
    try:
        app()
    except PostdeskError as exc:
        report(exc, stderr)
        sys.exit(exit_code_for(exc))
