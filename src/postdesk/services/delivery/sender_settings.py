"""Each sender's sending settings, its password decrypted once per version of its row.

A worker keeps one cache with its connections, from batch to batch, and drops both when
the queue is empty; an edit of the sender (a new ``updated_at``) makes a new entry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from postdesk.domain.senders import SenderSettings
from postdesk.services.senders.accounts import settings_from_row
from postdesk.storage.models import Sender
from postdesk.storage.secrets import SecretBox


class SenderSettingsCache:
    """Settings by sender id, with the version (``updated_at``) they were read at."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[datetime, SenderSettings]] = {}

    def load(
        self, session: Session, secrets: SecretBox, sender_id: int, version: datetime
    ) -> SenderSettings:
        """The settings of ``version`` of the sender, read and decrypted if not known yet."""
        known = self._known.get(sender_id)
        if known is not None and known[0] == version:
            return known[1]
        row = session.get(Sender, sender_id)
        assert row is not None  # the caller read its version in this transaction
        settings = settings_from_row(row, secrets)
        self._known[sender_id] = (version, settings)
        return settings

    def get(self, sender_id: int) -> tuple[datetime, SenderSettings]:
        """The version and settings last loaded for the sender."""
        return self._known[sender_id]

    def clear(self) -> None:
        self._known.clear()
