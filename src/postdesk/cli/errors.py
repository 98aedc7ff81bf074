"""The one place where postdesk errors become CLI exit codes and ``error:`` / ``hint:`` lines."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from postdesk import errors

EXIT_FAILED = 1  # the operation failed: an SMTP failure, a failed mail, storage unavailable
EXIT_USAGE = 2  # bad usage or invalid input (what click also uses for usage errors)

# Most specific first: the first matching class decides the exit code.
EXIT_BY_ERROR: tuple[tuple[type[errors.PostdeskError], int], ...] = (
    (errors.ValidationError, EXIT_USAGE),
    (errors.NotFoundError, EXIT_USAGE),
    (errors.SenderExistsError, EXIT_USAGE),
    (errors.ConfigError, EXIT_USAGE),
    (errors.PayloadTooLargeError, EXIT_USAGE),
    (errors.ConflictError, EXIT_FAILED),
    (errors.UnauthorizedError, EXIT_FAILED),
    (errors.ForbiddenError, EXIT_FAILED),
    (errors.TooFrequentError, EXIT_FAILED),
    (errors.UnavailableError, EXIT_FAILED),
    (errors.DeliveryError, EXIT_FAILED),
)


def exit_code_for(error: errors.PostdeskError) -> int:
    return next((code for cls, code in EXIT_BY_ERROR if isinstance(error, cls)), EXIT_FAILED)


def report(error: errors.PostdeskError, console: Console) -> None:
    """``error: <code>: <message>`` then ``hint: <hint>`` on stderr."""
    console.print(f"error: {error.code}: {escape(error.message)}", highlight=False, soft_wrap=True)
    if error.hint:
        console.print(f"hint: {escape(error.hint)}", highlight=False, soft_wrap=True)
