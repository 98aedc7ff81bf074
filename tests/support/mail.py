"""Raw test messages, passed to the transport as they are (the MIME builder lives elsewhere)."""

from __future__ import annotations


def raw_mail(subject: str = "postdesk: monthly report", body: str = "Hello.\n") -> bytes:
    """A small RFC 5322 message with bare LF line ends, as a careless caller might pass."""
    return (
        f"From: Postdesk Reports <reports@example.com>\n"
        f"To: alice@example.com\n"
        f"Subject: {subject}\n"
        f"\n"
        f"{body}"
    ).encode()
