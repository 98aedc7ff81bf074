"""A stored secret goes only to the server it was saved for.

Each kind of secret a sender stores names the settings that say where it goes and as
whom: its destination. An edit, or a test before OK, that keeps the stored secret must
leave that destination as it was; one that changes it must give the secret again, so
that nobody who may edit a sender can send its stored secret to a server of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from postdesk.domain.senders import SenderSettings
from postdesk.errors import ValidationError


@dataclass(frozen=True)
class BoundSecret:
    """One kind of stored secret: the field that carries it and what it is bound to."""

    field: str
    noun: str
    hint: str
    destination: Callable[[SenderSettings], Mapping[str, object]]

    def moved(self, saved: SenderSettings, edited: SenderSettings) -> list[str]:
        """What of the destination the edit changes, in words ("the mail server", …)."""
        before, after = self.destination(saved), self.destination(edited)
        return [part for part, value in before.items() if after[part] != value]


def _password_destination(settings: SenderSettings) -> Mapping[str, object]:
    # Validated settings are normalised: a host name in lower case without a trailing
    # dot, an IP literal in its canonical form; the login is the address when no
    # username is set, so changing the address then changes the login too.
    return {
        "the mail server": settings.smtp_host,
        "the port": settings.port,
        "the encryption": settings.encryption,
        "the login name": settings.login,
    }


PASSWORD = BoundSecret(
    field="password",
    noun="password",
    hint=(
        "A stored password is sent only to the server and login it was saved for: "
        "enter it again to use it with the new settings, or clear it to log in without one."
    ),
    destination=_password_destination,
)


def check_secrets_stay(
    saved: SenderSettings, edited: SenderSettings, kept: Iterable[BoundSecret]
) -> None:
    """Refuse, naming each secret's field, an edit that would send a kept secret elsewhere."""
    errors: dict[str, str] = {}
    hint = None
    for secret in kept:
        moved = secret.moved(saved, edited)
        if moved:
            errors[secret.field] = (
                f"{_joined(moved)} changed: enter the {secret.noun} again"
                f" (the stored one is sent only to the server it was saved for)"
            )
            hint = hint or secret.hint
    if errors:
        raise ValidationError(errors, hint=hint)


def _joined(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} and {parts[-1]}"
