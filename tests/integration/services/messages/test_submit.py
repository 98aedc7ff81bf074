"""Submitting messages: validation, the default sender, idempotency, batches, status reads."""

import base64
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from postdesk.domain.status import RecordKind
from postdesk.errors import (
    MailServiceUnconfiguredError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    ValidationError,
)
from postdesk.services.access.callers import SYSTEM, Caller
from postdesk.services.messages.submission import (
    MAX_ATTACHMENT_BYTES,
    Submitted,
    get_message,
    submit_batch,
    submit_message,
)
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import ApiToken, Attachment, Message
from tests.support.clock import T0, FakeClock

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def add_sender(rt: Runtime, address: str = "reports@example.com", *, default: bool = True) -> int:
    view = sender_service.create_sender(
        rt,
        {
            "smtp_host": "smtp.example.com",
            "port": 587,
            "encryption": "tls",
            "address": address,
            "display_name": "BI Reports",
        },
    )
    if default:
        sender_service.set_default_sender(rt, view.id)
    return view.id


def request(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "to": ["alice@example.org"],
        "subject": "Weekly sales",
        "html": "<p>Sales are up.</p>",
    }
    base.update(overrides)
    return base


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


ATTACHMENT = {"filename": "a.pdf", "content_type": "application/pdf", "content_base64": b64(b"x")}


def attachment(**overrides: Any) -> dict[str, Any]:
    return {**ATTACHMENT, **overrides}


A0 = "attachments[0]"


def count_messages(rt: Runtime) -> int:
    with rt.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def load(rt: Runtime, message_id: int) -> Message:
    with rt.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row


def make_token(rt: Runtime, name: str) -> int:
    with rt.transaction() as session:
        row = ApiToken(name=name, scope="send", token_hash=name.ljust(64, "0"))
        session.add(row)
        session.flush()
        return row.id


def test_a_message_is_committed_with_its_record_fields(rt: Runtime, clock: FakeClock) -> None:
    sender_id = add_sender(rt)
    token_id = make_token(rt, "reports")
    seen: list[int] = []
    # The hook runs after the commit: another session already sees the message.
    rt.submitted_hooks.append(lambda: seen.append(count_messages(rt)))
    submitted = submit_message(
        rt,
        request(
            to=["Alice@Example.org", "bi#reports&ops@example.com"],
            cc=["carol@example.org"],
            bcc=["audit@example.org"],
            text="Sales are up.",
            template_name="Weekly sales report",
            resources=["/reports/sales/weekly", "https://bi.example.com/d/42"],
            attachments=[
                attachment(filename="sales.pdf", content_base64=b64(b"%PDF-1.7")),
                attachment(
                    filename="chart.png",
                    content_type="image/png",
                    content_base64=b64(PNG),
                    content_id="chart1",
                ),
            ],
        ),
        caller=Caller(scope="send", token_id=token_id),
        client_ip="203.0.113.9",
    )  # fmt: skip
    assert (submitted.status, submitted.created) == ("queued", True)
    assert seen == [1]
    row = load(rt, submitted.id)
    assert (row.kind, row.status, row.attempts) == ("message", "queued", 0)
    assert (row.sender_id, row.sender_address, row.sender_name) == (
        sender_id,
        "reports@example.com",
        "BI Reports",
    )
    assert row.to_addrs == ["Alice@example.org", "bi#reports&ops@example.com"]
    assert row.recipients == [*row.to_addrs, "carol@example.org", "audit@example.org"]
    assert "audit@example.org" in row.recipients_search.splitlines()
    assert "alice@example.org" in row.recipients_search.splitlines()
    assert row.resources == [
        "/reports/sales/weekly",
        "https://bi.example.com/d/42",
        "sales.pdf",
        "chart.png",
    ]
    assert (row.template_name, row.client_ip, row.token_id) == (
        "Weekly sales report",
        "203.0.113.9",
        token_id,
    )
    assert row.message_id is not None
    assert row.message_id.startswith("<") and row.message_id.endswith("@example.com>")
    assert (row.created_at, row.next_attempt_at) == (T0, T0)
    with rt.transaction() as session:
        parts = list(
            session.scalars(
                select(Attachment)
                .where(Attachment.message_id == row.id)
                .order_by(Attachment.position)
            )
        )
    assert [(p.filename, p.content_type, p.content_id, p.size) for p in parts] == [
        ("sales.pdf", "application/pdf", None, 8),
        ("chart.png", "image/png", "chart1", len(PNG)),
    ]
    assert base64.b64decode(parts[1].encoded) == PNG


def test_the_named_sender_is_used_instead_of_the_default(rt: Runtime) -> None:
    add_sender(rt)
    other = add_sender(rt, "alerts@example.com", default=False)
    submitted = submit_message(rt, request(sender_id=other), caller=SYSTEM, client_ip=None)
    row = load(rt, submitted.id)
    assert (row.sender_id, row.sender_address) == (other, "alerts@example.com")


def test_every_message_gets_its_own_message_id(rt: Runtime) -> None:
    add_sender(rt)
    ids = submit_batch(rt, [request(), request()], caller=SYSTEM, client_ip=None)
    assert len({load(rt, i).message_id for i in ids}) == 2


def test_without_a_default_sender_nothing_is_queued(rt: Runtime) -> None:
    add_sender(rt, default=False)
    with pytest.raises(MailServiceUnconfiguredError):
        submit_message(rt, request(), caller=SYSTEM, client_ip=None)
    with pytest.raises(MailServiceUnconfiguredError):
        submit_batch(rt, [request()], caller=SYSTEM, client_ip=None)
    assert count_messages(rt) == 0


def test_an_unknown_sender_is_a_field_error(rt: Runtime) -> None:
    add_sender(rt)
    with pytest.raises(ValidationError) as caught:
        submit_message(rt, request(sender_id=999), caller=SYSTEM, client_ip=None)
    assert caught.value.fields == {"sender_id": "no sender has the id 999"}
    assert count_messages(rt) == 0


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"to": []}, "to", "at least one recipient"),
    ({"to": None}, "to", "at least one recipient"),
    ({"to": "alice@example.org"}, "to", "must be a list"),
    ({"to": ["alice@example.org", "bob"]}, "to[1]", "'bob' is not a valid mail address"),
    ({"to": ["a@example.org", 7]}, "to[1]", "must be text"),
    ({"cc": ["carol@@example.org"]}, "cc[0]", "not a valid mail address"),
    ({"bcc": ["x@example.org\r\nBcc: evil@example.net"]}, "bcc[0]", "line breaks"),
    ({"to": [f"u{i}@example.org" for i in range(501)]}, "to", "at most 500 recipients"),
    ({"subject": None}, "subject", "is required"),
    ({"subject": "  "}, "subject", "is required"),
    ({"subject": "x" * 501}, "subject", "at most 500 characters"),
    ({"subject": "Sales\r\nBcc: evil@example.net"}, "subject", "line breaks"),
    ({"subject": 42}, "subject", "must be text"),
    ({"html": None, "text": None}, "text", "html, text or both"),
    ({"html": "", "text": ""}, "text", "html, text or both"),
    ({"html": 5}, "html", "must be text"),
    ({"sender_id": "one"}, "sender_id", "whole number"),
    ({"sender_id": True}, "sender_id", "whole number"),
    ({"template_name": "t" * 256}, "template_name", "at most 255"),
    ({"resources": "/reports/a"}, "resources", "must be a list"),
    ({"resources": ["/a", ""]}, "resources[1]", "1 to 2048 characters"),
    ({"attachments": [attachment(content_base64="no!")]}, f"{A0}.content_base64", "base64"),
    ({"attachments": [attachment(content_base64=None)]}, f"{A0}.content_base64", "is required"),
    ({"attachments": [attachment(filename="")]}, f"{A0}.filename", "is required"),
    ({"attachments": [attachment(filename="a\r\n.pdf")]}, f"{A0}.filename", "line breaks"),
    ({"attachments": [attachment(content_type="pdf")]}, f"{A0}.content_type", "type/subtype"),
    ({"attachments": [attachment(content_id="a b")]}, f"{A0}.content_id", "without spaces"),
    ({"attachments": ["a.pdf"]}, "attachments[0]", "must be an object"),
    ({"idempotency_key": "k" * 201}, "idempotency_key", "at most 200"),
    ({"client_ip": "not-an-ip"}, "client_ip", "IPv4 or IPv6"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field", "words"), INVALID)
def test_invalid_requests_name_the_field_and_queue_nothing(
    rt: Runtime, change: dict[str, Any], field: str, words: str
) -> None:
    add_sender(rt)
    with pytest.raises(ValidationError) as caught:
        submit_message(rt, request(**change), caller=SYSTEM, client_ip=None)
    assert field in caught.value.fields, caught.value.fields
    assert words in caught.value.fields[field]
    assert caught.value.hint
    assert count_messages(rt) == 0


def test_every_bad_field_is_reported_at_once(rt: Runtime) -> None:
    add_sender(rt)
    with pytest.raises(ValidationError) as caught:
        submit_message(
            rt,
            {"to": ["bad"], "cc": ["worse"], "subject": "", "html": None},
            caller=SYSTEM,
            client_ip=None,
        )
    assert set(caught.value.fields) == {"to[0]", "cc[0]", "subject", "text"}


def test_bodies_alone_or_together_are_kept(rt: Runtime) -> None:
    add_sender(rt)
    text_only = submit_message(rt, request(html=None, text="plain"), caller=SYSTEM, client_ip=None)
    assert (load(rt, text_only.id).html, load(rt, text_only.id).text) == (None, "plain")
    only_cc = submit_message(
        rt, request(to=[], cc=["c@example.org"]), caller=SYSTEM, client_ip=None
    )
    assert load(rt, only_cc.id).recipients == ["c@example.org"]


def test_attachments_over_25_mib_are_too_large(rt: Runtime) -> None:
    add_sender(rt)
    half = b64(b"\0" * (MAX_ATTACHMENT_BYTES // 2))
    files = [
        attachment(filename="a.bin", content_base64=half),
        attachment(filename="b.bin", content_base64=half),
        attachment(filename="c.bin", content_base64=b64(b"!")),
    ]
    with pytest.raises(PayloadTooLargeError) as caught:
        submit_message(rt, request(attachments=files), caller=SYSTEM, client_ip=None)
    assert "25 MiB" in caught.value.message
    assert caught.value.hint
    assert count_messages(rt) == 0


def test_attachments_of_exactly_25_mib_are_accepted(rt: Runtime) -> None:
    add_sender(rt)
    files = [attachment(filename="big.bin", content_base64=b64(b"\1" * MAX_ATTACHMENT_BYTES))]
    submitted = submit_message(rt, request(attachments=files), caller=SYSTEM, client_ip=None)
    assert submitted.created


def test_an_idempotency_key_returns_the_first_message_for_24_hours(
    rt: Runtime, clock: FakeClock
) -> None:
    add_sender(rt)
    calls: list[int] = []
    rt.submitted_hooks.append(lambda: calls.append(1))
    first = submit_message(rt, request(idempotency_key="report-42"), caller=SYSTEM, client_ip=None)
    clock.advance(hours=23, minutes=59)
    again = submit_message(rt, request(idempotency_key="report-42"), caller=SYSTEM, client_ip=None)
    assert (again.id, again.created, again.status) == (first.id, False, "queued")
    assert count_messages(rt) == 1
    assert calls == [1]  # a repeat wakes nobody
    clock.advance(minutes=2)
    later = submit_message(rt, request(idempotency_key="report-42"), caller=SYSTEM, client_ip=None)
    assert later.created and later.id != first.id
    assert load(rt, first.id).idempotency_key is None
    assert load(rt, later.id).idempotency_key == "admin:report-42"


def test_idempotency_keys_belong_to_their_token(rt: Runtime) -> None:
    add_sender(rt)
    one = Caller(scope="send", token_id=make_token(rt, "one"))
    two = Caller(scope="send", token_id=make_token(rt, "two"))
    first = submit_message(rt, request(idempotency_key="daily"), caller=one, client_ip=None)
    other = submit_message(rt, request(idempotency_key="daily"), caller=two, client_ip=None)
    again = submit_message(rt, request(idempotency_key="daily"), caller=one, client_ip=None)
    assert first.id != other.id and again.id == first.id
    assert count_messages(rt) == 2


def test_a_batch_is_queued_in_order(rt: Runtime) -> None:
    add_sender(rt)
    ids = submit_batch(
        rt,
        [request(to=[f"u{i}@example.org"]) for i in range(5)],
        caller=SYSTEM,
        client_ip="198.51.100.4",
    )
    assert ids == sorted(ids) and len(ids) == 5
    assert [load(rt, i).to_addrs for i in ids] == [[f"u{i}@example.org"] for i in range(5)]
    assert {load(rt, i).client_ip for i in ids} == {"198.51.100.4"}


def test_a_batch_with_one_bad_message_queues_nothing(rt: Runtime) -> None:
    add_sender(rt)
    messages = [request() for _ in range(5)]
    messages[3] = request(to=["alice@example.org", "nobody"], subject="")
    messages[4] = request(sender_id=404)
    with pytest.raises(ValidationError) as caught:
        submit_batch(rt, messages, caller=SYSTEM, client_ip=None)
    assert set(caught.value.fields) == {"messages[3].to[1]", "messages[3].subject"}
    messages[3] = request()
    with pytest.raises(ValidationError) as caught:
        submit_batch(rt, messages, caller=SYSTEM, client_ip=None)
    assert set(caught.value.fields) == {"messages[4].sender_id"}
    assert count_messages(rt) == 0


@pytest.mark.parametrize("size", [0, 1001])
def test_a_batch_holds_1_to_1000_messages(rt: Runtime, size: int) -> None:
    add_sender(rt)
    with pytest.raises(ValidationError) as caught:
        submit_batch(rt, [request()] * size, caller=SYSTEM, client_ip=None)
    assert "between 1 and 1000" in caught.value.fields["messages"]
    assert count_messages(rt) == 0


def test_a_batch_of_1000_is_accepted(rt: Runtime) -> None:
    add_sender(rt)
    ids = submit_batch(rt, [request()] * 1000, caller=SYSTEM, client_ip=None)
    assert len(set(ids)) == 1000 == count_messages(rt)


def test_idempotency_keys_within_and_across_batches(rt: Runtime) -> None:
    add_sender(rt)
    first = submit_batch(
        rt,
        [request(idempotency_key="a"), request(idempotency_key="a"), request()],
        caller=SYSTEM,
        client_ip=None,
    )
    assert first[0] == first[1] != first[2]
    second = submit_batch(
        rt,
        [request(idempotency_key="a"), request(idempotency_key="b")],
        caller=SYSTEM,
        client_ip=None,
    )
    assert second[0] == first[0]
    assert count_messages(rt) == 3


def test_per_message_client_ips_in_a_batch(rt: Runtime) -> None:
    add_sender(rt)
    ids = submit_batch(
        rt,
        [request(client_ip="192.0.2.1"), request()],
        caller=SYSTEM,
        client_ip="192.0.2.9",
    )
    assert [load(rt, i).client_ip for i in ids] == ["192.0.2.1", "192.0.2.9"]


def test_status_is_visible_to_admins_and_to_the_token_that_sent_it(rt: Runtime) -> None:
    add_sender(rt)
    mine, theirs = make_token(rt, "mine"), make_token(rt, "theirs")
    submitted = submit_message(
        rt, request(), caller=Caller(scope="send", token_id=mine), client_ip=None
    )
    view = get_message(rt, submitted.id, caller=Caller(scope="send", token_id=mine))
    assert view.to_dict() == {
        "id": submitted.id,
        "status": "queued",
        "attempts": 0,
        "error": None,
        "created_at": load(rt, submitted.id).created_at.isoformat(),
        "sent_at": None,
        "recipient_results": [
            {"address": "alice@example.org", "status": "pending", "smtp_code": None, "reply": None}
        ],
    }
    assert get_message(rt, submitted.id, caller=SYSTEM).id == submitted.id
    with pytest.raises(NotFoundError):
        get_message(rt, submitted.id, caller=Caller(scope="send", token_id=theirs))
    with pytest.raises(NotFoundError):
        get_message(rt, submitted.id + 100, caller=SYSTEM)


def test_a_verification_code_mail_has_its_kind(rt: Runtime) -> None:
    add_sender(rt)
    submitted = submit_message(
        rt, request(), caller=SYSTEM, client_ip=None, kind=RecordKind.VERIFICATION_CODE
    )
    assert load(rt, submitted.id).kind == "verification_code"


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_a_database_that_cannot_store_answers_unavailable(rt: Runtime, tmp_path: Path) -> None:
    add_sender(rt)
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'postdesk.db'}")
    down = dataclasses.replace(rt, sessions=sessionmaker(bind=broken))
    hooks: list[Callable[[], None]] = []
    down.submitted_hooks = hooks
    with pytest.raises(UnavailableError) as caught:
        submit_message(down, request(), caller=SYSTEM, client_ip=None)
    assert caught.value.retry_after > 0
    assert "Nothing was queued" in (caught.value.hint or "")
    with pytest.raises(UnavailableError):
        submit_batch(down, [request()], caller=SYSTEM, client_ip=None)
    broken.dispose()
    assert count_messages(rt) == 0


def test_concurrent_repeats_of_one_key_queue_one_message(rt: Runtime) -> None:
    add_sender(rt)
    barrier = threading.Barrier(6)

    def submit() -> Submitted:
        barrier.wait()
        return submit_message(rt, request(idempotency_key="race"), caller=SYSTEM, client_ip=None)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: submit(), range(6)))
    assert len({r.id for r in results}) == 1
    assert sorted(r.created for r in results) == [False] * 5 + [True]
    assert count_messages(rt) == 1


def test_odd_shapes_are_refused(rt: Runtime) -> None:
    add_sender(rt)
    with pytest.raises(ValidationError) as caught:
        submit_batch(rt, [request(), ["not", "an", "object"]], caller=SYSTEM, client_ip=None)  # type: ignore[list-item]
    assert caught.value.fields == {"messages[1]": "must be an object"}
    with pytest.raises(ValidationError) as caught:
        submit_message(rt, request(resources=["/r"] * 501), caller=SYSTEM, client_ip=None)
    assert "at most 500 resources" in caught.value.fields["resources"]
    with pytest.raises(ValueError, match="kind"):
        submit_message(rt, request(), caller=SYSTEM, client_ip=None, kind=RecordKind.TEST)
    assert count_messages(rt) == 0


def test_a_failing_hook_does_not_undo_the_acceptance(rt: Runtime) -> None:
    add_sender(rt)

    def broken_hook() -> None:
        raise RuntimeError("broker down")

    rt.submitted_hooks.append(broken_hook)
    submitted = submit_message(rt, request(), caller=SYSTEM, client_ip=None)
    assert submitted.created and load(rt, submitted.id).status == "queued"


def test_a_batch_keeps_each_message_with_its_own_sender_and_attachments(rt: Runtime) -> None:
    default = add_sender(rt)
    other = add_sender(rt, "alerts@example.com", default=False)
    ids = submit_batch(
        rt,
        [
            request(attachments=[attachment(filename="one.pdf"), attachment(filename="two.pdf")]),
            request(sender_id=other),
            request(attachments=[attachment(filename="three.csv", content_base64=b64(b"a,b"))]),
        ],
        caller=SYSTEM,
        client_ip=None,
    )
    with rt.transaction() as session:
        files = session.execute(
            select(Attachment.message_id, Attachment.position, Attachment.filename).order_by(
                Attachment.message_id, Attachment.position
            )
        ).all()
    assert [tuple(f) for f in files] == [
        (ids[0], 0, "one.pdf"),
        (ids[0], 1, "two.pdf"),
        (ids[2], 0, "three.csv"),
    ]
    assert [load(rt, i).sender_id for i in ids] == [default, other, default]
    assert [load(rt, i).sender_address for i in ids][1] == "alerts@example.com"
    assert load(rt, ids[0]).resources == ["one.pdf", "two.pdf"]
    assert len({load(rt, i).message_id for i in ids}) == 3


def test_an_expired_key_in_a_batch_gives_way_to_a_new_message(
    rt: Runtime, clock: FakeClock
) -> None:
    add_sender(rt)
    [old] = submit_batch(rt, [request(idempotency_key="k")], caller=SYSTEM, client_ip=None)
    [recent] = submit_batch(rt, [request(idempotency_key="r")], caller=SYSTEM, client_ip=None)
    clock.advance(hours=24, minutes=1)
    [recent_again] = submit_batch(rt, [request(idempotency_key="r")], caller=SYSTEM, client_ip=None)
    assert recent_again != recent  # 24 h passed for this one too
    clock.advance(hours=1)
    ids = submit_batch(
        rt,
        [request(idempotency_key="k"), request(idempotency_key="r"), request(idempotency_key="k")],
        caller=SYSTEM,
        client_ip=None,
    )
    assert ids[0] not in (old, recent) and ids[2] == ids[0]
    assert ids[1] == recent_again
    assert load(rt, old).idempotency_key is None
    assert load(rt, ids[0]).idempotency_key == "admin:k"
    assert count_messages(rt) == 4
