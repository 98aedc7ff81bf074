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
from postdesk.services.runtime import Runtime, open_runtime


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
