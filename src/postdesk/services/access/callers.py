"""Who is asking: an administrator (web session or admin token) or a send token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["admin", "send"]


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a service.

    ``scope`` ``admin`` may do everything; ``send`` may send messages, request
    verification codes and read the status of the messages it sent (``token_id``).
    """

    scope: Scope
    token_id: int | None = None
    admin_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


SYSTEM = Caller(scope="admin")  # the CLI, which works directly on the database
