"""Provider presets: the SMTP settings of common mail providers and how to get their passwords."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from postdesk.domain.encryption import Encryption


@dataclass(frozen=True)
class Provider:
    """One preset of the Add Sender drop-down (``GET /providers``)."""

    key: str
    name: str
    smtp_host: str
    port: int
    encryption: Encryption
    authorization_code: bool  # True: the password is an authorization code / app password
    help: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["encryption"] = self.encryption.value
        return data


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "qq",
        "QQ Mail",
        "smtp.qq.com",
        465,
        Encryption.SSL,
        True,
        "In QQ Mail choose Settings › Account and Security, enable the POP3/IMAP/SMTP service "
        "and confirm by SMS. Enter the authorization code it shows as the password, "
        "not your QQ password.",
    ),
    Provider(
        "exmail",
        "Tencent Exmail",
        "smtp.exmail.qq.com",
        465,
        Encryption.SSL,
        True,
        "Tick Enable POP/SMTP Service under Settings › Client Settings. With secure login "
        "(WeChat binding) on, click Generate New Password there and enter that client-specific "
        "code instead of the mailbox password.",
    ),
    Provider(
        "163",
        "NetEase 163 Mail",
        "smtp.163.com",
        465,
        Encryption.SSL,
        True,
        "On the 163 web mail choose Settings › POP3/SMTP/IMAP, enable the POP3/SMTP service and "
        "verify by SMS. Enter the authorization code it shows (only once) as the password.",
    ),
    Provider(
        "126",
        "NetEase 126 Mail",
        "smtp.126.com",
        465,
        Encryption.SSL,
        True,
        "On the 126 web mail choose Settings › POP3/SMTP/IMAP, enable the POP3/SMTP service and "
        "verify by SMS. Enter the authorization code it shows (only once) as the password.",
    ),
    Provider(
        "gmail",
        "Gmail",
        "smtp.gmail.com",
        587,
        Encryption.TLS,
        True,
        "Turn on 2-Step Verification for the Google account, then create an app password under "
        "Google Account › Security › App passwords and enter its 16 letters as the password.",
    ),
    Provider(
        "office365",
        "Outlook / Microsoft 365",
        "smtp.office365.com",
        587,
        Encryption.TLS,
        False,
        "An administrator must allow authenticated SMTP (SMTP AUTH) for this mailbox in the "
        "Microsoft 365 admin center. Enter the mailbox password, or an app password if the "
        "account uses multi-factor authentication.",
    ),
    Provider(
        "yahoo",
        "Yahoo Mail",
        "smtp.mail.yahoo.com",
        465,
        Encryption.SSL,
        True,
        "In Yahoo Account Security choose Generate app password and enter it instead of the "
        "account password.",
    ),
    Provider(
        "icloud",
        "iCloud Mail",
        "smtp.mail.me.com",
        587,
        Encryption.TLS,
        True,
        "Sign in at appleid.apple.com, choose Sign-In and Security › App-Specific Passwords and "
        "generate one; the Apple ID needs two-factor authentication.",
    ),
    Provider(
        "zoho",
        "Zoho Mail",
        "smtp.zoho.com",
        465,
        Encryption.SSL,
        False,
        "Enter the account password; with two-factor authentication on, create an "
        "application-specific password under Zoho Accounts › Security and enter that instead.",
    ),
    Provider(
        "alimail",
        "Alibaba Mail",
        "smtp.qiye.aliyun.com",
        465,
        Encryption.SSL,
        False,
        "Enable SMTP in the web mail under Settings › POP3/SMTP/IMAP. If the administrator "
        "requires secure client login, generate a client-specific password there and enter "
        "it instead.",
    ),
    Provider(
        "exchange",
        "Microsoft Exchange (on-premises)",
        "",
        25,
        Encryption.NONE,
        False,
        "Enter the Exchange server's IP address as the mail server and the mailbox's own password. "
        "Choose TLS Encryption instead if the server offers STARTTLS.",
    ),
)

_BY_KEY = {provider.key: provider for provider in PROVIDERS}


def find_provider(key: str) -> Provider | None:
    return _BY_KEY.get(key.strip().lower())


def provider_for_host(host: str) -> Provider | None:
    """The preset whose SMTP host this is, to tailor hints (e.g. authorization codes)."""
    host = host.strip().lower().rstrip(".")
    return next((p for p in PROVIDERS if p.smtp_host and p.smtp_host == host), None)
