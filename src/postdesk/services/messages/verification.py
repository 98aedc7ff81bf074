"""Verification codes: one-time numeric codes mailed to an address, checked once.

At most one code per address per 60 s (``too_frequent`` with Retry-After); codes are
stored as keyed MACs, expire after 5 minutes, are single-use, and die after 5 wrong
guesses (after which even the right code checks invalid). The mail's bodies, the only
readable copy of a code, are blanked when its outcome is final (``storage.queue``).
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from html import escape

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from postdesk.domain.addresses import AddressError, MailAddress, parse_address
from postdesk.domain.status import RecordKind
from postdesk.errors import TooFrequentError, ValidationError
from postdesk.services.access.callers import Caller
from postdesk.services.messages.submission import submit_message
from postdesk.services.runtime import Runtime
from postdesk.storage.db import begin_sqlite_write
from postdesk.storage.models import VerificationCode

CODE_DIGITS = 6
LIFETIME = timedelta(minutes=5)
MIN_INTERVAL = timedelta(seconds=60)
MAX_WRONG_GUESSES = 5
SUBJECT = "Your verification code"


@dataclass(frozen=True)
class CodeSent:
    expires_in: int
    message_id: int


def request_code(rt: Runtime, email: str, *, caller: Caller, client_ip: str | None) -> CodeSent:
    """Create a code for ``email`` and queue the mail that carries it."""
    address = _address(email)
    key = address.address.lower()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    code_id = _store_code(rt, key, rt.secrets.mac(f"{key}:{code}"))
    try:
        submitted = submit_message(
            rt, _mail(address.address, code), caller=caller, client_ip=client_ip,
            kind=RecordKind.VERIFICATION_CODE,
        )  # fmt: skip
    except BaseException:
        # No mail, no code: the caller may ask again at once.
        with rt.transaction() as session:
            session.execute(delete(VerificationCode).where(VerificationCode.id == code_id))
        raise
    with rt.transaction() as session:
        row = session.get(VerificationCode, code_id)
        if row is not None:
            row.message_id = submitted.id
    return CodeSent(expires_in=int(LIFETIME.total_seconds()), message_id=submitted.id)


def check_code(rt: Runtime, email: str, code: str) -> bool:
    """True once for the right, unexpired code; every wrong guess counts toward the limit."""
    key = _address(email).address.lower()
    now = rt.clock()
    with rt.transaction() as session:
        _lock_address(session, key)
        row = _latest(session, key)
        if row is None or row.used_at is not None or row.expires_at <= now:
            return False
        if row.failed_guesses >= MAX_WRONG_GUESSES:
            return False
        expected = rt.secrets.mac(f"{key}:{code.strip()}")
        if hmac.compare_digest(expected, row.code_hash):
            row.used_at = now
            return True
        row.failed_guesses += 1
        return False


def _store_code(rt: Runtime, key: str, code_hash: str) -> int:
    now = rt.clock()
    with rt.transaction() as session:
        _lock_address(session, key)
        latest = _latest(session, key)
        if latest is not None and now - latest.created_at < MIN_INTERVAL:
            wait = math.ceil((latest.created_at + MIN_INTERVAL - now).total_seconds())
            raise TooFrequentError(
                f"Failed to obtain verification code. Try again in {wait} s.",
                retry_after=wait,
                hint="One code per address per minute.",
            )
        row = VerificationCode(
            email_key=key, code_hash=code_hash, created_at=now, expires_at=now + LIFETIME,
            failed_guesses=0,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def _lock_address(session: Session, key: str) -> None:
    """Serialise requests for one address, so two at once cannot both pass the 60 s rule.

    SQLite already serialises writers (the first write takes the database's write lock);
    on PostgreSQL a transaction-scoped advisory lock on the address does it.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    else:
        # Take SQLite's write lock now (BEGIN IMMEDIATE), before reading the latest code.
        begin_sqlite_write(session.connection())


def _latest(session: Session, key: str) -> VerificationCode | None:
    query = (
        select(VerificationCode)
        .where(VerificationCode.email_key == key)
        .order_by(VerificationCode.created_at.desc(), VerificationCode.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def _address(email: str) -> MailAddress:
    try:
        return parse_address(email)
    except AddressError as exc:
        raise ValidationError({"email": f"the address {exc}"}) from None


def _mail(address: str, code: str) -> dict[str, object]:
    minutes = int(LIFETIME.total_seconds() // 60)
    return {
        "to": [address],
        "subject": SUBJECT,
        "text": f"Your verification code is {code}. It expires in {minutes} minutes.\n",
        "html": (
            f"<p>Your verification code is <strong>{escape(code)}</strong>.</p>"
            f"<p>It expires in {minutes} minutes. If you did not ask for it, ignore this mail.</p>"
        ),
        "template_name": "verification code",
    }
