"""``postdesk token …``: API tokens for scripts (the token is printed once, at creation)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from postdesk.cli.output import print_json, print_value, stderr, stdout

# Each command imports the services it uses when it runs (a fast start for the others).

app = typer.Typer(help="API tokens (scope admin or send).", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    scope: Annotated[str, typer.Option("--scope", help="admin (everything) or send.")],
) -> None:
    """Create a token and print it once; only its hash is kept."""
    from postdesk.services.access import tokens as service
    from postdesk.services.runtime import runtime

    with runtime() as rt:
        new = service.create_token(rt, name, scope)
    print_value(new.token)
    stderr.print(f"token {new.view.id} ({new.view.scope}) created; it is not shown again")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List tokens (never the tokens themselves)."""
    from rich.table import Table

    from postdesk.services.access import tokens as service
    from postdesk.services.runtime import runtime

    with runtime() as rt:
        tokens = service.list_tokens(rt)
    if as_json:
        print_json([t.to_dict() for t in tokens])
        return
    table = Table("ID", "Name", "Scope", "Created", "Last used")
    for t in tokens:
        last = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        table.add_row(str(t.id), escape(t.name), t.scope, f"{t.created_at:%Y-%m-%d %H:%M}", last)
    stdout.print(table)


@app.command("delete")
def delete(token_id: Annotated[int, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token at once."""
    from postdesk.services.access import tokens as service
    from postdesk.services.runtime import runtime

    with runtime() as rt:
        service.delete_token(rt, token_id)
    stderr.print(f"revoked token {token_id}")
