"""Replies of Microsoft 365 and Gmail that mean more than their SMTP code says.

A ``535`` from Microsoft 365 may be a wrong password, SMTP AUTH switched off for the tenant,
or the tenant's security defaults; a ``554`` after the data may be spam or an address the
account may not send as. Each entry below is recognised by its enhanced status code (and,
where one code has several causes, by its words) and says what to change. Pure code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OAUTH_INSTEAD = (
    "Microsoft turns password logins for SMTP off by default at the end of December 2026: "
    "switch this sender to OAuth 2.0."
)
_ENABLE_SMTP_AUTH = (
    "Either enable authenticated SMTP in the Exchange admin center (Settings › Mail flow: "
    'clear "Turn off SMTP AUTH protocol for your organization"; for one mailbox: Mailbox › '
    'Manage email apps › "Authenticated SMTP"), or better, switch this sender to OAuth 2.0: '
    "Microsoft turns password logins for SMTP off by default at the end of December 2026."
)


@dataclass(frozen=True)
class ProviderReply:
    """A known provider reply: its SMTP code, enhanced status code and, optionally, words;
    ``code`` is the diagnosis it is (a SPEC section-4 code)."""

    smtp_code: int
    enhanced: str
    code: str
    hint: str
    words: re.Pattern[str] | None = None

    def matches(self, smtp_code: int, text: str) -> bool:
        if smtp_code != self.smtp_code or _enhanced(text) != self.enhanced:
            return False
        return self.words is None or bool(self.words.search(text))


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Order matters: an entry with words comes before the entry of the same code without.
PROVIDER_REPLIES: tuple[ProviderReply, ...] = (
    ProviderReply(
        535,
        "5.7.139",
        "smtp_auth_failed",
        "Microsoft 365 has SMTP AUTH (password login for SMTP) disabled for the whole tenant. "
        + _ENABLE_SMTP_AUTH,
        _words(r"SmtpClientAuthentication is disabled"),
    ),
    ProviderReply(
        535,
        "5.7.139",
        "smtp_auth_failed",
        "The tenant's security defaults block password logins for SMTP (Microsoft Entra "
        "admin center › Overview › Properties › Manage security defaults). " + OAUTH_INSTEAD,
        _words(r"security defaults"),
    ),
    ProviderReply(
        535,
        "5.7.139",
        "smtp_auth_failed",
        "Microsoft 365 refused the password login (SMTP AUTH or basic authentication is "
        "disabled for the tenant or the mailbox, or a Conditional Access policy blocks it). "
        + _ENABLE_SMTP_AUTH,
    ),
    ProviderReply(
        550,
        "5.7.30",
        "smtp_auth_failed",
        "Microsoft 365 no longer accepts passwords (basic authentication) for SMTP from "
        "this tenant. " + OAUTH_INSTEAD,
    ),
    ProviderReply(
        535,
        "5.7.3",
        "smtp_auth_failed",
        "Microsoft 365 refused the login: check the username (the mailbox's full address) "
        "and the password; an account with multi-factor authentication needs OAuth 2.0 "
        "rather than its password, and the mailbox needs authenticated SMTP enabled.",
    ),
    ProviderReply(
        530,
        "5.7.57",
        "smtp_auth_failed",
        "Microsoft 365 takes mail only after a login: enter the mailbox's password (or "
        "switch this sender to OAuth 2.0), and use port 587 with TLS (STARTTLS).",
    ),
    ProviderReply(
        554,
        "5.2.252",
        "smtp_sender_rejected",
        "Microsoft 365 refused the sender address (SendAsDenied): the account may not send "
        "as this address. Use the address of the mailbox you log in with, or give that "
        'account the "Send As" permission on this address in the Exchange admin center.',
    ),
    ProviderReply(
        534,
        "5.7.9",
        "smtp_auth_failed",
        "Gmail wants an app password, not the account password: turn on 2-Step Verification "
        "for the Google account, create an app password (Google Account › Security › App "
        "passwords) and enter it as the password, or switch this sender to OAuth 2.0.",
    ),
    ProviderReply(
        535,
        "5.7.8",
        "smtp_auth_failed",
        "Gmail did not accept the login: Google takes only an app password (with 2-Step "
        "Verification on) or OAuth 2.0, never the account password; check the app password, "
        "and whether the Workspace administrator allows app passwords.",
        _words(r"gsmtp|google|username and password not accepted"),
    ),
)

_ENHANCED = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")


def _enhanced(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


def provider_reply(smtp_code: int, text: str) -> ProviderReply | None:
    """The known provider reply that ``smtp_code text`` is, if any."""
    return next((reply for reply in PROVIDER_REPLIES if reply.matches(smtp_code, text)), None)
