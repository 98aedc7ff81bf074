"""Errors keep their code and details through pickling and copying (task queues need it).

Every error class has a row of its own in the HTTP status table and in the exit code table.
"""

import copy
import pickle

import pytest

from postdesk import errors
from postdesk.cli import errors as cli_errors
from postdesk.http import errors as http_errors

SAMPLES = [
    errors.DeliveryError("smtp_auth_failed", "535 no", hint="use the code", smtp_code=535),
    errors.ValidationError({"port": "out of range"}, hint="1-65535"),
    errors.TooFrequentError("Try again in 5 s.", retry_after=5),
    errors.UnavailableError("database down", retry_after=30),
    errors.MailServiceUnconfiguredError(),
    errors.NotFoundError("No sender has the id 3."),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: e.code)
def test_round_trip_keeps_everything(error: errors.PostdeskError) -> None:
    for clone in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):  # noqa: S301
        assert type(clone) is type(error)
        assert clone.to_dict() == error.to_dict()
        assert str(clone) == str(error)
        assert getattr(clone, "retry_after", None) == getattr(error, "retry_after", None)


def test_error_bodies_follow_the_spec_shape() -> None:
    assert SAMPLES[0].to_dict() == {
        "code": "smtp_auth_failed",
        "message": "535 no",
        "hint": "use the code",
        "smtp_code": 535,
    }
    assert SAMPLES[1].to_dict()["fields"] == {"port": "out of range"}
    assert "hint" not in SAMPLES[5].to_dict()


def every_error_class(base: type[errors.PostdeskError]) -> list[type[errors.PostdeskError]]:
    """``base``'s subclasses, and theirs, all the way down."""
    found: list[type[errors.PostdeskError]] = []
    for subclass in base.__subclasses__():
        found += [subclass, *every_error_class(subclass)]
    return found


def an_instance(cls: type[errors.PostdeskError]) -> errors.PostdeskError:
    """One error of class ``cls``, built the way its constructor asks."""
    if cls is errors.MailServiceUnconfiguredError:
        return cls()
    if issubclass(cls, errors.ValidationError):
        return cls({"port": "out of range"})
    if issubclass(cls, errors.TooFrequentError):
        return cls("Try again in 5 s.", retry_after=5)
    if issubclass(cls, errors.DeliveryError):
        return cls("smtp_error", "451 later", hint="try again")
    return cls("something went wrong")


def test_every_error_class_has_an_http_status_and_an_exit_code_of_its_own() -> None:
    """A new error class needs a row in the HTTP status table and in the exit code table."""
    without_status, without_exit_code = [], []
    for cls in every_error_class(errors.PostdeskError):
        error = an_instance(cls)
        assert type(error) is cls
        if http_errors.status_for(error) == 500:
            without_status.append(cls.__name__)
        if not any(isinstance(error, mapped) for mapped, _ in cli_errors.EXIT_BY_ERROR):
            without_exit_code.append(cls.__name__)  # exit_code_for's fallback is not a choice
        assert cli_errors.exit_code_for(error) in (cli_errors.EXIT_FAILED, cli_errors.EXIT_USAGE)
    assert without_status == [], f"no HTTP status (500): {without_status}"
    assert without_exit_code == [], f"no exit code in EXIT_BY_ERROR: {without_exit_code}"
