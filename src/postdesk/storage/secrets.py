"""Secrets at rest: the Fernet key that encrypts sender passwords, its file, and its check.

The key comes from ``POSTDESK_SECRET_KEY`` or from ``$POSTDESK_HOME/secret.key``,
which is created on first run (mode 0600, in a 0700 folder). The database keeps
one value encrypted under the key (table ``key_check``), so starting with a
different key — or with a fresh key because secret.key was deleted — is a
clear ``ConfigError`` instead of passwords that silently fail to decrypt.

Startup order: ``box = load_secret_box(settings)``, then, in a new session,
``verify_secret_key(session, box)`` before anything is encrypted or decrypted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from postdesk.config import Settings
from postdesk.errors import ConfigError
from postdesk.storage.models import KeyCheck

_GENERATE = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
_CHECK_VALUE = "postdesk key check"
_MISMATCH = "the secret key does not match the one this database was created with"
_RESTORE = "Restore the original secret.key or POSTDESK_SECRET_KEY."


class SecretBox:
    """Encrypts and decrypts short texts (sender passwords) under one Fernet key."""

    __slots__ = ("_fernet", "_mac_key", "created_file", "source")

    def __init__(self, key: bytes, *, source: str, created_file: Path | None = None) -> None:
        """``source`` names where the key came from, for messages; ``created_file`` is the
        key file if this process has just created it (a fresh key)."""
        self._fernet = Fernet(key)
        # A separate key for MACs, derived so that one secret serves both purposes.
        self._mac_key = hmac.new(key, b"postdesk mac key", hashlib.sha256).digest()
        self.source = source
        self.created_file = created_file

    def __repr__(self) -> str:
        return f"SecretBox(source={self.source!r})"  # never the key

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def mac(self, text: str) -> str:
        """A keyed SHA-256 MAC (hex) of ``text``: short secrets such as verification codes
        are stored this way, so a stolen database alone cannot be brute-forced."""
        return hmac.new(self._mac_key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def decrypt(self, token: bytes) -> str:
        """The text sealed in ``token``; ``ConfigError`` if another key sealed it."""
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            # Fernet authenticates every token, so a wrong key is detected, never
            # turned into garbage.
            raise ConfigError(f"{_MISMATCH} ({self.source})", hint=_RESTORE) from None


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for ``settings``: POSTDESK_SECRET_KEY if set, else the key file.

    The key file is created on first run; a fresh one is marked (``created_file``) so
    that verify_secret_key can tell a deleted key file from a new installation.
    """
    if settings.secret_key is not None:
        return SecretBox(_env_key(settings.secret_key), source="POSTDESK_SECRET_KEY")
    path = settings.key_file
    _ensure_home(settings.home)
    if _create_key_file(path):
        return SecretBox(_read_key_file(path), source=str(path), created_file=path)
    return SecretBox(_read_key_file(path), source=str(path))


def verify_secret_key(session: Session, box: SecretBox) -> None:
    """Check ``box`` against the database's key_check row, creating the row on first use.

    Commits ``session`` when it creates the row; call it at startup with a fresh session.
    If this process has just created the key file but the database already belongs to
    another key, the new file is removed again (nothing was encrypted with it) so the
    original can simply be put back.
    """
    row = session.get(KeyCheck, 1)
    if row is None:
        row = _create_check(session, box)
        if row is None:
            return  # a new database: from now on it belongs to this key
    if not _opens(box, row.token):
        raise _mismatch(box)


def generate_key() -> str:
    """A new random key in the form POSTDESK_SECRET_KEY expects."""
    return Fernet.generate_key().decode("ascii")


def _env_key(value: str) -> bytes:
    key = value.strip().encode("ascii", errors="replace")
    try:
        Fernet(key)
    except ValueError:
        # Never echo the value: it is meant to be a secret.
        raise ConfigError(
            "POSTDESK_SECRET_KEY is not a valid key: it must be 32 random bytes in "
            "URL-safe base64 (44 characters)",
            hint=f"Generate one with: {_GENERATE}",
        ) from None
    return key


def _ensure_home(home: Path) -> None:
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create POSTDESK_HOME {home}: {exc.strerror}",
            hint="Set POSTDESK_HOME to a folder this user may write.",
        ) from None


def _create_key_file(path: Path) -> bool:
    """Create ``path`` with a new key unless it exists; ``True`` if this call created it.

    The key is written and synced under a temporary name opened with O_CREAT|O_EXCL and
    mode 0600, then hard-linked to ``path``: the link either fails because the file exists
    (another process won the race) or makes a complete, private file appear at once.
    """
    if path.exists():
        return False
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, Fernet.generate_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        _sync_folder(path.parent)
        return True
    except OSError as exc:
        raise ConfigError(
            f"cannot create the secret key file {path}: {exc.strerror}",
            hint="Check that POSTDESK_HOME is writable, or set POSTDESK_SECRET_KEY.",
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _sync_folder(folder: Path) -> None:
    # The new directory entry must survive a crash too, or the key is lost with its data.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"the secret key file {path} is accessible to other users "
                f"(mode {stat.filemode(info.st_mode)})",
                hint=f"chmod 600 {path}",
            )
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the secret key file {path}: {exc.strerror}",
            hint="Check its owner and permissions, or set POSTDESK_SECRET_KEY.",
        ) from None
    if not key:
        raise ConfigError(f"the secret key file {path} is empty", hint=_RESTORE)
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(
            f"the secret key file {path} does not hold a valid key",
            hint=f"Restore the original secret.key (a new one, from {_GENERATE}, "
            "cannot decrypt passwords stored under the old one).",
        ) from None
    return key


def _create_check(session: Session, box: SecretBox) -> KeyCheck | None:
    """Store the check value for a new database; the row another process stored, if it won."""
    session.add(KeyCheck(id=1, token=box.encrypt(_CHECK_VALUE)))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return session.get(KeyCheck, 1)
    return None


def _opens(box: SecretBox, token: bytes) -> bool:
    try:
        return box.decrypt(token) == _CHECK_VALUE
    except ConfigError:
        return False


def _mismatch(box: SecretBox) -> ConfigError:
    if box.created_file is None:
        return ConfigError(f"{_MISMATCH} ({box.source})", hint=_RESTORE)
    # The key file was missing: this start created a fresh key that cannot open this
    # database. Remove it so that restoring the original file is all it takes.
    with contextlib.suppress(FileNotFoundError):
        box.created_file.unlink()
    return ConfigError(
        f"the secret key file {box.created_file} is missing, but this database was created "
        "with a secret key; without it the stored sender passwords cannot be decrypted",
        hint=f"Restore the original secret.key to {box.created_file} (mode 0600), or set "
        "POSTDESK_SECRET_KEY to the original key.",
    )
