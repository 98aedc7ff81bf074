"""The whole postdesk exception tree; every error carries a stable code from the SPEC.

    PostdeskError                      code          (HTTP / CLI mapping lives in the front ends)
    ├── ConfigError                    config_error        settings or secret key unusable at start
    ├── ValidationError                validation_error    bad input, with per-field messages
    ├── NotFoundError                  not_found
    ├── ConflictError
    │   ├── SenderExistsError          sender_exists
    │   └── MailServiceUnconfiguredError  mail_service_unconfigured
    ├── UnauthorizedError              unauthorized
    ├── ForbiddenError                 forbidden
    ├── PayloadTooLargeError           payload_too_large
    ├── TooFrequentError               too_frequent        carries retry_after seconds
    ├── UnavailableError               unavailable         storage cannot take the request
    └── DeliveryError                  smtp_*              an SMTP diagnosis (SPEC section 4)

Front ends translate these in one place each: ``postdesk.http.errors`` to HTTP
answers, ``postdesk.cli.errors`` to exit codes. Nothing here knows about either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def error_body(
    code: str,
    message: str,
    hint: str | None = None,
    *,
    smtp_code: int | None = None,
    fields: Mapping[str, str] | None = None,
    complete: bool = False,
) -> dict[str, Any]:
    """The SPEC's error shape ``{code, message, hint, fields, smtp_code}``, built here only.

    An error answer leaves out what it lacks; a record's or a message's error
    (``complete``) always carries ``hint`` and ``smtp_code``, null when unknown.
    """
    body: dict[str, Any] = {"code": code, "message": message}
    if complete or hint:
        body["hint"] = hint
    if fields:
        body["fields"] = dict(fields)
    if complete or smtp_code is not None:
        body["smtp_code"] = smtp_code
    return body


class PostdeskError(Exception):
    """Base of every error postdesk raises on purpose."""

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat the default exception pickling; errors must
        # survive copy.deepcopy and travel between processes (task queues) intact.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def to_dict(self) -> dict[str, Any]:
        """The SPEC's error body: ``{code, message, hint?, fields?, smtp_code?}``."""
        return error_body(self.code, self.message, self.hint)


class ConfigError(PostdeskError):
    code = "config_error"


class ValidationError(PostdeskError):
    """Input rejected; ``fields`` maps a field name to what is wrong with it."""

    code = "validation_error"

    def __init__(
        self,
        fields: Mapping[str, str],
        *,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.fields = dict(fields)
        if message is None:
            message = "; ".join(f"{name}: {text}" for name, text in self.fields.items())
        super().__init__(message or "invalid input", hint=hint)

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.hint, fields=self.fields)


class NotFoundError(PostdeskError):
    code = "not_found"


class ConflictError(PostdeskError):
    code = "conflict"


class SenderExistsError(ConflictError):
    code = "sender_exists"


class MailServiceUnconfiguredError(ConflictError):
    code = "mail_service_unconfigured"

    def __init__(self) -> None:
        super().__init__(
            "The mail service is not configured: no system default sender is set.",
            hint="Choose a System Default Sender (postdesk sender default ID), "
            "or name a sender explicitly.",
        )


class UnauthorizedError(PostdeskError):
    code = "unauthorized"


class ForbiddenError(PostdeskError):
    code = "forbidden"


class PayloadTooLargeError(PostdeskError):
    code = "payload_too_large"


class TooFrequentError(PostdeskError):
    code = "too_frequent"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class UnavailableError(PostdeskError):
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 30, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class DeliveryError(PostdeskError):
    """An SMTP attempt failed; ``code`` is one of the SPEC's ``smtp_*`` diagnosis codes.

    ``message`` holds the server's own words where there are any, ``smtp_code``
    the reply code, ``transient`` whether a later attempt may succeed.
    """

    code = "smtp_error"
    hint: str  # every diagnosis says what to do

    def __init__(
        self,
        code: str,
        message: str,
        *,
        hint: str,
        smtp_code: int | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, hint=hint, code=code)
        self.smtp_code = smtp_code
        self.transient = transient

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.hint, smtp_code=self.smtp_code)


def _rebuild(
    cls: type[PostdeskError], args: tuple[Any, ...], state: dict[str, Any]
) -> PostdeskError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
