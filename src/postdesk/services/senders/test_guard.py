"""What bounds a test mail: how often a caller may send one, and where it may connect.

A test mail connects at once to whatever host and port it is given and reports what
happened, so it is counted per administrator (``TEST_MAIL_RATE``) and it goes only to
destinations that may be mail servers: never a link-local or cloud metadata address
(checked on every address the host resolves to, and the connection then uses exactly
those addresses), and only to the hosts and ports the operator allows.
"""

from __future__ import annotations

import ipaddress
import math
import time

from limits import RateLimitItemPerMinute

from postdesk.domain.destinations import DestinationRules, refuse_reserved_host
from postdesk.domain.senders import SenderSettings
from postdesk.errors import TooFrequentError
from postdesk.services.access.callers import Caller
from postdesk.services.runtime import Runtime
from postdesk.storage.repositories import sender_uses_port
from postdesk.transport import resolve_server

TEST_MAIL_RATE = RateLimitItemPerMinute(10)  # per administrator session, per admin token


def count_test_mail(rt: Runtime, caller: Caller) -> None:
    """Count one test mail for ``caller``; ``429 too_frequent`` beyond ``TEST_MAIL_RATE``.

    The local operator (the CLI: neither an administrator's session nor a token) is not
    counted.
    """
    key = _caller_key(caller)
    if key is None or rt.limiter.hit(TEST_MAIL_RATE, "test_mail", key):
        return
    reset = rt.limiter.get_window_stats(TEST_MAIL_RATE, "test_mail", key).reset_time
    wait = max(1, math.ceil(reset - time.time()))
    raise TooFrequentError(
        f"Too many test mails: at most {TEST_MAIL_RATE.amount} a minute. Try again in {wait} s.",
        retry_after=wait,
        hint="Each test mail connects to the mail server at once; wait, then send it again.",
    )


def _caller_key(caller: Caller) -> str | None:
    if caller.admin_id is not None:
        return f"admin:{caller.admin_id}"
    if caller.token_id is not None:
        return f"token:{caller.token_id}"
    return None


def checked_addresses(rt: Runtime, settings: SenderSettings) -> tuple[str, ...]:
    """The addresses the test mail may connect to, all checked; ``422`` on ``smtp_host``
    or ``port`` when the destination is not allowed. A name that does not resolve is the
    usual ``smtp_connect_failed`` diagnosis."""
    rules = DestinationRules(
        rt.settings.test_mail_allowed_hosts, rt.settings.test_mail_allowed_ports
    )
    refuse_reserved_host(settings.smtp_host)
    if not rules.allows_port(settings.port) and not _saved_port(rt, settings.port):
        raise rules.port_refused(settings.port)
    addresses = resolve_server(settings)
    resolved = [ipaddress.ip_address(address) for address in addresses]
    refuse_reserved_host(settings.smtp_host, resolved)
    rules.refuse_host(settings.smtp_host, resolved)
    return addresses


def _saved_port(rt: Runtime, port: int) -> bool:
    with rt.transaction() as session:
        return sender_uses_port(session, port)
