"""API tokens against a real database: a revoke counts at once, in every process."""

from datetime import timedelta

from postdesk.config import Settings
from postdesk.services.access.tokens import (
    LAST_USED_RESOLUTION,
    authenticate_token,
    create_token,
    delete_token,
    list_tokens,
)
from postdesk.services.messages.submission import submit_message
from postdesk.services.runtime import Runtime, open_runtime
from tests.integration.services.messages.test_submit import add_sender, request


def test_a_token_revoked_by_another_process_is_refused_at_once(
    rt: Runtime, settings: Settings
) -> None:
    new = create_token(rt, "reports", "send")
    caller = authenticate_token(rt, new.token)
    assert caller is not None and (caller.scope, caller.token_id) == ("send", new.view.id)
    other = open_runtime(settings)  # what `postdesk token delete` opens
    try:
        delete_token(other, new.view.id)
    finally:
        other.close()
    assert authenticate_token(rt, new.token) is None


def test_unknown_tokens_and_last_use(rt: Runtime) -> None:
    new = create_token(rt, "admin tool", "admin")
    assert authenticate_token(rt, new.token + "x") is None
    assert authenticate_token(rt, "not-a-token") is None
    start = rt.clock()
    rt.clock = lambda: start
    caller = authenticate_token(rt, new.token)
    assert caller is not None and caller.is_admin
    [view] = list_tokens(rt)
    assert view.last_used_at == start
    later = start + LAST_USED_RESOLUTION / 2
    rt.clock = lambda: later
    authenticate_token(rt, new.token)
    assert list_tokens(rt)[0].last_used_at == start  # refreshed at most once a minute
    latest = start + LAST_USED_RESOLUTION + timedelta(seconds=1)
    rt.clock = lambda: latest
    authenticate_token(rt, new.token)
    assert list_tokens(rt)[0].last_used_at == latest


def test_a_new_token_never_takes_a_deleted_one_s_id_nor_its_idempotency_keys(
    rt: Runtime,
) -> None:
    first = create_token(rt, "reports", "send")
    caller = authenticate_token(rt, first.token)
    assert caller is not None
    add_sender(rt)
    earlier = submit_message(rt, request(idempotency_key="daily-1"), caller=caller, client_ip=None)
    delete_token(rt, first.view.id)
    second = create_token(rt, "reports again", "send")
    assert second.view.id != first.view.id  # SQLite reuses the highest rowid without AUTOINCREMENT
    again = authenticate_token(rt, second.token)
    assert again is not None
    later = submit_message(rt, request(idempotency_key="daily-1"), caller=again, client_ip=None)
    assert later.created and later.id != earlier.id
