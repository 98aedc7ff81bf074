"""Errors keep their code and details through pickling and copying (task queues need it)."""

import copy
import pickle

import pytest

from postdesk import errors

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
