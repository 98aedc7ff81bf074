"""``postdesk doctor HOST``: which ports and encryptions answer, the certificate, AUTH methods."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from postdesk.cli.output import print_json, stderr, stdout

if TYPE_CHECKING:  # the transport (ssl, cryptography) is imported when the command runs
    from postdesk.transport import PortReport

# By port mode (a StrEnum of the transport, keyed here by its values).
_ANSWERS = {
    "implicit_tls": "SSL (implicit TLS)",
    "starttls": "TLS (STARTTLS offered)",
    "plain": "plain, no STARTTLS",
    "no_answer": "nothing",
}
_CHOOSE = {"implicit_tls": "SSL Encryption", "starttls": "TLS Encryption", "plain": "No Encryption"}


def doctor(
    host: Annotated[str, typer.Argument(help="Mail server to probe, e.g. smtp.qq.com.")],
    port: Annotated[
        list[int] | None,
        typer.Option("--port", help="Probe this port (repeatable); default 25, 465, 587, 2525."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per step.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Probe a mail server's usual ports without logging in or sending anything."""
    from postdesk.transport import PortMode, probe_host
    from postdesk.transport.probe import DEFAULT_PORTS

    reports = probe_host(host, tuple(port or DEFAULT_PORTS), timeout=timeout)
    if as_json:
        print_json([_as_dict(r) for r in reports])
    else:
        _print_reports(host, reports)
    if not any(r.mode is not PortMode.NO_ANSWER for r in reports):
        raise typer.Exit(1)


def _print_reports(host: str, reports: list[PortReport]) -> None:
    from rich.table import Table

    table = Table("Port", "Answers", "Choose", "AUTH methods", "Certificate", title=escape(host))
    for r in reports:
        table.add_row(
            str(r.port),
            _ANSWERS[r.mode],
            _CHOOSE.get(r.mode, "-"),
            " ".join(r.auth_methods) or "-",
            _certificate_line(r),
        )
    stdout.print(table)
    for r in reports:
        if r.error is not None:
            stderr.print(f"port {r.port}: {r.error.code}: {escape(r.error.message)}")
            if r.error.hint:
                stderr.print(f"  hint: {escape(r.error.hint)}")


def _certificate_line(report: PortReport) -> str:
    cert = report.certificate
    if cert is None:
        return "-"
    trust = "trusted" if cert.trusted else f"NOT trusted ({cert.problem or 'unknown issuer'})"
    return escape(
        f"{cert.subject}; issuer {cert.issuer}; expires {cert.not_after:%Y-%m-%d}; {trust}"
    )


def _as_dict(report: PortReport) -> dict[str, Any]:
    cert = report.certificate
    return {
        "host": report.host,
        "port": report.port,
        "reachable": report.reachable,
        "mode": report.mode.value,
        "encryption": report.mode.encryption.value if report.mode.encryption else None,
        "greeting": report.greeting,
        "auth_methods": list(report.auth_methods),
        "size_limit": report.size_limit,
        "certificate": {**asdict(cert), "not_after": cert.not_after.isoformat()} if cert else None,
        "error": report.error.to_dict() if report.error else None,
    }
