"""Benchmark of the message builder against the stdlib EmailMessage baseline.

Builds 5,000 messages of about 5 KB of HTML (no attachments) both ways and prints messages
per second for each and the ratio. The baseline sets the headers, ``set_content(text)``,
``add_alternative(html, subtype="html")`` and renders with ``as_bytes(policy=SMTP)``;
postdesk's builder is given only the HTML and generates the text alternative itself.

    .venv/bin/python bench/bench_builder.py [--messages N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from postdesk.domain.addresses import parse_address
from postdesk.domain.html_text import html_to_text
from postdesk.domain.mail import build_mail, new_message_id
from postdesk.domain.senders import validate_sender

SENDER = validate_sender(
    {"smtp_host": "smtp.example.com", "address": "reports@example.com", "display_name": "BI 报表"}
)
RECIPIENT = parse_address("alice@example.org")
DATE = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


def report_html(number: int) -> str:
    """A report mail of about 5 KB: heading, paragraphs, a table, a list and links."""
    rows = "".join(
        f'<tr><td style="padding:4px;border:1px solid #ddd">Region {row}</td>'
        f'<td style="padding:4px;text-align:right">{(row * 7919 + number) % 100000:,}</td>'
        f'<td style="padding:4px">{(row * 31 + number) % 100}%</td></tr>\n'
        for row in range(28)
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Daily report</title>'
        "<style>body{font-family:Arial,sans-serif} td{color:#333}</style></head>\n<body>\n"
        f"<h1>Daily sales report #{number}</h1>\n"
        "<p>Hello team,<br>\nhere are the figures for yesterday &mdash; all regions are "
        "included. Totals are in <b>EUR</b> &amp; exclude VAT.</p>\n"
        '<table cellspacing="0" style="border-collapse:collapse">\n'
        f"<tr><th>Region</th><th>Sales</th><th>Share</th></tr>\n{rows}</table>\n"
        "<ul>\n<li>Best region: <strong>Region 7</strong></li>\n"
        "<li>Worst region: Region 3</li>\n</ul>\n"
        '<p>Open the <a href="https://bi.example.com/reports/daily?id=42&amp;tab=sales">'
        'full report</a> or write to <a href="mailto:bi@example.com">bi@example.com</a>.</p>\n'
        '<p style="color:#888;font-size:11px">You receive this mail because you subscribed '
        "to the daily report.</p>\n</body></html>\n"
    )


def with_email_message(number: int, html: str, text: str) -> bytes:
    message = EmailMessage()
    message["From"] = '"BI 报表" <reports@example.com>'
    message["To"] = "alice@example.org"
    message["Subject"] = f"Daily sales report #{number}"
    message["Date"] = format_datetime(DATE)
    message["Message-ID"] = f"<{number}.bench@example.com>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes(policy=policy.SMTP)


# The baseline's signature; postdesk generates the text part itself, so it ignores ``text``.
def with_postdesk(number: int, html: str, text: str) -> bytes:  # noqa: ARG001
    mail = build_mail(
        sender=SENDER,
        to=[RECIPIENT],
        subject=f"Daily sales report #{number}",
        html_body=html,
        text_body=None,  # generated from the HTML: that work is part of the measurement
        message_id=new_message_id(SENDER.address),
        date=DATE,
    )
    return mail.data


# Only the generation of the text part, which build_mail does for every HTML-only mail.
def text_alternative(number: int, html: str, text: str) -> bytes:  # noqa: ARG001
    return html_to_text(html).encode()


def rate(build: Callable[[int, str, str], bytes], bodies: list[tuple[str, str]]) -> float:
    started = time.perf_counter()
    for number, (html, text) in enumerate(bodies):
        build(number, html, text)
    return len(bodies) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    count = parser.parse_args().messages
    bodies = [(html, html_to_text(html)) for html in map(report_html, range(count))]
    size = sum(len(html) for html, _ in bodies) / count
    baseline = rate(with_email_message, bodies)
    ours = rate(with_postdesk, bodies)
    same = rate(with_postdesk, [bodies[0]] * count)
    text_only = rate(text_alternative, bodies)
    print(f"{count} messages, {size:.0f} characters of HTML each (a different HTML each)")
    print(f"EmailMessage + as_bytes: {baseline:10.0f} msgs/s  ({1e6 / baseline:7.1f} us/msg)")
    print(f"postdesk build_mail:     {ours:10.0f} msgs/s  ({1e6 / ours:7.1f} us/msg)")
    print(f"ratio: {ours / baseline:.1f}x")
    print(
        f"text alternative alone: {text_only:10.0f} msgs/s  ({1e6 / text_only:7.1f} us/msg, "
        f"{text_only / baseline:.1f}x the baseline)"
    )
    print(f"(postdesk, one HTML for every message: {same:.0f} msgs/s, text generated once)")


if __name__ == "__main__":
    main()
