"""Administrators: creation with an Argon2 password hash, and password checks."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from postdesk.domain.addresses import AddressError, check_header_value
from postdesk.errors import ValidationError
from postdesk.services.runtime import Runtime
from postdesk.storage import repositories as repo
from postdesk.storage.models import Admin

MIN_PASSWORD = 10
MAX_USERNAME = 150
_hasher = PasswordHasher()


def create_admin(rt: Runtime, username: str, password: str) -> int:
    """Create an administrator and return its id; the password is stored only as a hash."""
    name = _check_username(username)
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            {"password": f"must be at least {MIN_PASSWORD} characters"},
            hint="Choose a longer password; a passphrase of several words works well.",
        )
    with rt.transaction() as session:
        if repo.find_admin(session, name) is not None:
            raise _taken(name)
        admin = Admin(username=name, password_hash=_hasher.hash(password), created_at=rt.clock())
        session.add(admin)
        try:
            session.flush()
        except IntegrityError:
            raise _taken(name) from None
        return admin.id


def check_admin_password(rt: Runtime, username: str, password: str) -> int | None:
    """The administrator's id if the password matches, else ``None``."""
    with rt.transaction() as session:
        admin = repo.find_admin(session, username.strip())
        if admin is None:
            # Spend the same time as a real check so names cannot be probed by timing.
            _hasher.hash(password)
            return None
        try:
            _hasher.verify(admin.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(admin.password_hash):
            admin.password_hash = _hasher.hash(password)
        return admin.id


def admin_exists(rt: Runtime) -> bool:
    with rt.transaction() as session:
        return repo.count_admins(session) > 0


def _check_username(username: str) -> str:
    name = username.strip()
    try:
        check_header_value(name)
    except AddressError as exc:
        raise ValidationError({"username": str(exc)}) from None
    if not name or len(name) > MAX_USERNAME or any(c.isspace() for c in name):
        raise ValidationError(
            {"username": f"must be 1 to {MAX_USERNAME} characters without spaces"}
        )
    return name


def _taken(name: str) -> ValidationError:
    return ValidationError(
        {"username": f"the administrator {name!r} already exists"},
        hint="Choose another name.",
    )


def admin_name(rt: Runtime, admin_id: int) -> str | None:
    """The user name of administrator ``admin_id`` (None if it no longer exists)."""
    with rt.transaction() as session:
        admin = session.get(Admin, admin_id)
        return admin.username if admin is not None else None
