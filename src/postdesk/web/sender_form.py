"""The Add / Edit Sender form: what the administrator typed, as service input and back as a form.

The password is write-only here as everywhere: it goes to the services, never back into
the page. Typed values (all but the password) are kept when the form comes back with
errors or with the result of a test email.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any

from fastapi import Depends, Form

from postdesk.domain.providers import Provider, find_provider, provider_for_host
from postdesk.domain.senders import DEFAULT_PORT, DEFAULT_TIMEOUT_S, USUAL_PORT, Encryption
from postdesk.errors import DeliveryError, PostdeskError, ValidationError
from postdesk.services.senders.accounts import SenderView, apply_preset
from postdesk.services.senders.test_mail import TestMailResult

ENCRYPTION_LABELS = {
    Encryption.SSL.value: "SSL Encryption",
    Encryption.TLS.value: "TLS Encryption",
    Encryption.NONE.value: "No Encryption",
}
USUAL_PORTS = {encryption.value: port for encryption, port in USUAL_PORT.items()}

# Service field names as the form calls them (the test mail's ``to`` is the Recipient).
_FORM_NAME = {"to": "recipient"}
FORM_FIELDS = (
    "preset",
    "smtp_host",
    "port",
    "encryption",
    "address",
    "password",
    "display_name",
    "username",
    "timeout_s",
    "max_per_minute",
    "ca_cert_pem",
    "recipient",
)


@dataclass(frozen=True)
class SenderEntry:
    """One submission of the sender form, exactly as typed."""

    preset: str = ""
    smtp_host: str = ""
    port: str = ""
    encryption: str = ""
    address: str = ""
    password: str = field(default="", repr=False)
    display_name: str = ""
    username: str = ""
    timeout_s: str = ""
    max_per_minute: str = ""
    ca_cert_pem: str = ""
    clear_password: bool = False
    clear_ca_cert: bool = False

    def service_fields(self, *, editing: bool) -> dict[str, Any]:
        """The input for ``create_sender`` / ``update_sender`` / ``send_test_mail``.

        A preset chosen with the host left empty fills the host, and the port and the
        encryption where they still hold the form's defaults. On edit an empty password
        keeps the stored one and an empty CA certificate keeps the stored certificate,
        unless the matching "clear" box is ticked.
        """
        data: dict[str, Any] = {
            "smtp_host": self.smtp_host,
            "port": self.port,
            "encryption": self.encryption,
            "address": self.address,
            "display_name": self.display_name,
            "username": self.username,
            "password": self.password or None,
            "timeout_s": self.timeout_s,
            "max_per_minute": self.max_per_minute,
        }
        provider = find_provider(self.preset) if self.preset else None
        if provider is not None and not self.smtp_host.strip():
            if self.port.strip() in ("", str(DEFAULT_PORT)):
                data["port"] = provider.port
            if self.encryption in ("", Encryption.TLS.value):
                data["encryption"] = provider.encryption.value
        if self.preset:
            data["preset"] = self.preset
        if self.ca_cert_pem.strip():
            data["ca_cert_pem"] = self.ca_cert_pem
        elif not editing or self.clear_ca_cert:
            data["ca_cert_pem"] = None
        if editing and self.clear_password and not self.password:
            data["clear_password"] = True
        return apply_preset(data)

    def values(self) -> dict[str, str]:
        """What goes back into the form: everything but the password."""
        typed = asdict(self)
        return {name: typed[name] for name in FORM_FIELDS if name not in ("password", "recipient")}


def sender_entry(
    preset: Annotated[str, Form()] = "",
    smtp_host: Annotated[str, Form()] = "",
    port: Annotated[str, Form()] = "",
    encryption: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    timeout_s: Annotated[str, Form()] = "",
    max_per_minute: Annotated[str, Form()] = "",
    ca_cert_pem: Annotated[str, Form()] = "",
    clear_password: Annotated[str, Form()] = "",
    clear_ca_cert: Annotated[str, Form()] = "",
) -> SenderEntry:
    return SenderEntry(
        preset=preset.strip(),
        smtp_host=smtp_host,
        port=port,
        encryption=encryption,
        address=address,
        password=password,
        display_name=display_name,
        username=username,
        timeout_s=timeout_s,
        max_per_minute=max_per_minute,
        ca_cert_pem=ca_cert_pem,
        clear_password=bool(clear_password),
        clear_ca_cert=bool(clear_ca_cert),
    )


SenderEntryDep = Annotated[SenderEntry, Depends(sender_entry)]


@dataclass(frozen=True)
class SenderForm:
    """The dialog as the template shows it: values, errors, and a test email's outcome."""

    sender_id: int | None = None
    values: dict[str, str] = field(default_factory=dict)
    saved: dict[str, str] = field(default_factory=dict)  # where the stored password goes
    has_password: bool = False
    has_ca_cert: bool = False
    clear_password: bool = False
    clear_ca_cert: bool = False
    password_typed: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    error: PostdeskError | None = None
    recipient: str = ""
    test_open: bool = False
    test_sent: TestMailResult | None = None
    test_failed: DeliveryError | None = None
    tested: bool = False  # the error (if any) came from Send, not from OK

    @classmethod
    def blank(cls) -> SenderForm:
        values = {"port": str(DEFAULT_PORT), "encryption": Encryption.TLS.value}
        return cls(values=values)

    @classmethod
    def for_sender(cls, sender: SenderView) -> SenderForm:
        provider = provider_for_host(sender.smtp_host)
        timeout = "" if sender.timeout_s == DEFAULT_TIMEOUT_S else f"{sender.timeout_s:g}"
        rate = sender.max_per_minute
        values = {
            "preset": provider.key if provider else "",
            "smtp_host": sender.smtp_host,
            "port": str(sender.port),
            "encryption": sender.encryption,
            "address": sender.address,
            "display_name": sender.display_name,
            "username": sender.username or "",
            "timeout_s": timeout,
            "max_per_minute": "" if rate is None else str(rate),
            "ca_cert_pem": "",
        }
        return cls(
            sender_id=sender.id,
            values=values,
            saved=_destination(sender),
            has_password=sender.has_password,
            has_ca_cert=sender.has_ca_cert,
        )

    @classmethod
    def from_entry(
        cls, entry: SenderEntry, stored: SenderView | None, recipient: str = ""
    ) -> SenderForm:
        return cls(
            sender_id=stored.id if stored else None,
            values=entry.values(),
            saved=_destination(stored) if stored else {},
            has_password=stored.has_password if stored else False,
            has_ca_cert=stored.has_ca_cert if stored else False,
            clear_password=entry.clear_password,
            clear_ca_cert=entry.clear_ca_cert,
            password_typed=bool(entry.password),
            recipient=recipient,
            test_open=bool(recipient.strip()),
        )

    def with_error(self, error: PostdeskError, *, tested: bool = False) -> SenderForm:
        errors: dict[str, str] = {}
        if isinstance(error, ValidationError):
            for name, problem in error.fields.items():
                errors[_FORM_NAME.get(name, name)] = problem
        elif error.code == "sender_exists":
            errors["address"] = error.message
        return replace(
            self, errors=errors, error=error, tested=tested, test_open=self.test_open or tested
        )

    @property
    def editing(self) -> bool:
        return self.sender_id is not None

    @property
    def title(self) -> str:
        return "Edit Sender" if self.editing else "Add Sender"

    @property
    def action(self) -> str:
        return f"/mailbox/senders/{self.sender_id}" if self.editing else "/mailbox/senders"

    @property
    def provider(self) -> Provider | None:
        key = self.values.get("preset", "")
        return find_provider(key) if key else None

    @property
    def other_errors(self) -> dict[str, str]:
        """Problems with no field of their own in the form."""
        return {name: text for name, text in self.errors.items() if name not in FORM_FIELDS}

    @property
    def first_invalid(self) -> str | None:
        return next((name for name in FORM_FIELDS if name in self.errors), None)

    @property
    def password_placeholder(self) -> str:
        if not self.editing:
            return ""
        return "unchanged" if self.has_password else "none stored"

    @property
    def password_unencrypted(self) -> bool:
        """No Encryption with a password to log in with: it would cross the network as is."""
        kept = self.has_password and not self.clear_password
        return self.values.get("encryption") == Encryption.NONE.value and (
            self.password_typed or kept
        )


def _destination(sender: SenderView) -> dict[str, str]:
    """The server and login a stored password was saved for, for the page's script."""
    return {
        "host": sender.smtp_host,
        "port": str(sender.port),
        "encryption": sender.encryption,
        "login": sender.username or sender.address,
    }
