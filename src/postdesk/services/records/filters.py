"""What a records request asks for: the filter, the page size and the keyset cursor, parsed."""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from postdesk.domain.records import RESULTS, RecordFilter, RecordKey
from postdesk.errors import ValidationError
from postdesk.services.runtime import Runtime

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

_MAX_TEXT = {"sender": 320, "recipient": 320, "template": 255}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


# ---------------------------------------------------------------- parsing the filters


def parse_record_filter(params: Mapping[str, str | None]) -> RecordFilter:
    """A filter from query parameters or CLI options; other keys are ignored.

    Raises ``ValidationError`` naming every bad field at once.
    """
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key in ("sender", "recipient", "template"):
        values[key] = _text(params.get(key), key, problems)
    values["since"] = _moment(params.get("since"), "since", problems, end_of_day=False)
    values["until"] = _moment(params.get("until"), "until", problems, end_of_day=True)
    values["result"] = _result(params.get("result"), problems)
    since, until = values["since"], values["until"]
    if since is not None and until is not None and since > until:
        problems["until"] = "must not be before since"
    if problems:
        raise ValidationError(problems, hint=_FILTER_HINT)
    return RecordFilter(**values)


_FILTER_HINT = (
    "Dates are ISO 8601: 2025-03-01 or 2025-03-01T08:30:00 (UTC unless a zone is given); "
    "result is success, failure or pending."
)


def _text(raw: str | None, key: str, problems: dict[str, str]) -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    if _CONTROL.search(value):
        problems[key] = "must not contain line breaks or control characters"
    elif len(value) > _MAX_TEXT[key]:
        problems[key] = f"must be at most {_MAX_TEXT[key]} characters"
    return value


def _moment(
    raw: str | None, key: str, problems: dict[str, str], *, end_of_day: bool
) -> datetime | None:
    value = (raw or "").strip()
    if not value:
        return None
    try:
        return parse_moment(value, end_of_day=end_of_day)
    except (ValueError, OverflowError):
        problems[key] = f"{value!r} is not an ISO 8601 date or date-time"
        return None


def parse_moment(value: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time as an aware UTC datetime (``ValueError`` if it is neither).

    A bare date means its first moment, or with ``end_of_day`` its last microsecond, so
    that an inclusive ``until`` takes in the whole day. A date-time without a zone is UTC.
    """
    try:
        day = date.fromisoformat(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
    else:
        moment = datetime.combine(day, time.max if end_of_day else time.min)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _result(raw: str | None, problems: dict[str, str]) -> str | None:
    value = (raw or "").strip().lower()
    if not value:
        return None
    if value not in RESULTS:
        problems["result"] = f"must be one of {', '.join(RESULTS)}"
        return None
    return value


def parse_limit(value: str | int | None) -> int:
    """The page size: 1–500, 50 when absent; ``ValidationError`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_LIMIT
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_LIMIT:
        raise ValidationError(
            {"limit": f"must be a whole number from 1 to {MAX_LIMIT}"},
            hint=f"Leave it out for {DEFAULT_LIMIT} records a page.",
        )
    return number


# ---------------------------------------------------------------- the cursor

_CURSOR_VERSION = "r1"


def encode_cursor(rt: Runtime, key: RecordKey) -> str:
    """An opaque cursor for the records after ``key`` (creation time, id)."""
    created_at, record_id = key
    micros = _epoch_micros(created_at)
    payload = f"{_CURSOR_VERSION}.{micros}.{record_id}"
    mac = rt.secrets.mac(f"records cursor {payload}")[:16]
    return base64.urlsafe_b64encode(f"{payload}.{mac}".encode()).decode().rstrip("=")


def decode_cursor(rt: Runtime, cursor: str) -> RecordKey:
    """The key a cursor stands for; ``ValidationError`` if it is not one postdesk made."""
    try:
        padded = cursor.strip() + "=" * (-len(cursor.strip()) % 4)
        version, micros, record_id, mac = (
            base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii").split(".")
        )
        payload = f"{version}.{micros}.{record_id}"
        expected = rt.secrets.mac(f"records cursor {payload}")[:16]
        if version != _CURSOR_VERSION or not hmac.compare_digest(mac, expected):
            raise ValueError("not signed")
        return _from_epoch_micros(int(micros)), int(record_id)
    except (ValueError, UnicodeError, OverflowError):
        raise ValidationError(
            {"cursor": "is not a cursor from this postdesk"},
            hint="Start again from the first page (leave the cursor out).",
        ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
