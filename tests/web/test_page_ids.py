"""Ids in page addresses and forms that no row can have (past the id columns' range, or
not numbers) read as "not found" on both databases, never as a failure."""

import pytest
from fastapi.testclient import TestClient

OUT_OF_RANGE = ["2147483648", "99999999999", "0", "1" * 40, "12ab"]


@pytest.mark.parametrize("database_kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("record_id", OUT_OF_RANGE)
def test_a_record_page_for_an_impossible_id_is_not_found(
    site: TestClient, logged_in: str, record_id: str
) -> None:
    answer = site.get(f"/mailbox/records/{record_id}")
    assert answer.status_code == 404
    assert "There is no record" in answer.text or "no record" in answer.text


@pytest.mark.parametrize("database_kind", ["sqlite", "postgresql"])
def test_a_default_sender_out_of_range_is_refused_as_unknown(
    site: TestClient, logged_in: str
) -> None:
    answer = site.post(
        "/mailbox/default",
        data={"csrf_token": logged_in, "default_sender_id": "99999999999"},
    )
    assert answer.status_code in (303, 404, 422)
    assert answer.status_code < 500
