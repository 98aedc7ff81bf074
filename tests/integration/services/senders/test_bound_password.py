"""A stored password goes only to the server and login it was saved for: real servers that
record every connection and login, real databases, through the services."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from postdesk.errors import ValidationError
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as service
from postdesk.services.senders.test_mail import send_test_mail
from postdesk.storage.models import Message
from tests.support.smtp import SENDER_ADDRESS, SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
CODE = "bound-Zq9-secret-7731"
LOGIN = SENDER_ADDRESS


@dataclass(frozen=True)
class Move:
    """A saved sender on ``saved``, and a change that points its password at ``target``."""

    saved: SmtpTestServer
    saved_fields: dict[str, Any]
    target: SmtpTestServer
    change: dict[str, Any]
    login: str  # the login the target expects after the change


def _other_host(smtp_server: ServerFactory) -> Move:
    saved = smtp_server(credentials=(LOGIN, CODE))
    target = smtp_server(host="127.0.0.2", port=saved.port, credentials=(LOGIN, CODE))
    return Move(saved, sender_fields(saved.sender()), target, {"smtp_host": "127.0.0.2"}, LOGIN)


def _other_port(smtp_server: ServerFactory) -> Move:
    saved = smtp_server(credentials=(LOGIN, CODE))
    target = smtp_server(credentials=(LOGIN, CODE))
    return Move(saved, sender_fields(saved.sender()), target, {"port": target.port}, LOGIN)


def _other_encryption(smtp_server: ServerFactory) -> Move:
    server = smtp_server(tls="starttls", credentials=(LOGIN, CODE))
    return Move(server, sender_fields(server.sender()), server, {"encryption": "none"}, LOGIN)


def _other_username(smtp_server: ServerFactory) -> Move:
    server = smtp_server(credentials=("bi-login", CODE))
    saved = sender_fields(server.sender(username="old-login"))
    return Move(server, saved, server, {"username": "bi-login"}, "bi-login")


def _other_address_as_login(smtp_server: ServerFactory) -> Move:
    # No username: the address is the login, so a new address is a new login.
    server = smtp_server(credentials=("alerts@example.com", CODE))
    saved = sender_fields(server.sender(username=None))
    return Move(server, saved, server, {"address": "alerts@example.com"}, "alerts@example.com")


MOVES = {
    "smtp_host": _other_host,
    "port": _other_port,
    "encryption": _other_encryption,
    "username": _other_username,
    "address_as_login": _other_address_as_login,
}


@pytest.fixture(params=list(MOVES))
def move(request: pytest.FixtureRequest, smtp_server: ServerFactory) -> Move:
    return MOVES[request.param](smtp_server)


def records(rt: Runtime) -> list[Message]:
    with rt.transaction() as session:
        return list(session.scalars(select(Message)))


def assert_refused(caught: pytest.ExceptionInfo[ValidationError]) -> None:
    assert set(caught.value.fields) == {"password"}
    assert "enter the password again" in caught.value.fields["password"]
    assert caught.value.hint is not None
    assert "only to the server" in caught.value.hint
    assert CODE not in f"{caught.value.message} {caught.value.hint}"


@pytest.mark.parametrize("database_kind", ["sqlite"])
@pytest.mark.parametrize("password", [None, ""])
def test_a_test_before_ok_that_moves_the_password_must_give_it(
    rt: Runtime, move: Move, password: str | None
) -> None:
    saved = service.create_sender(rt, move.saved_fields)
    unsaved = {**move.change, "password": password}
    with pytest.raises(ValidationError) as caught:
        send_test_mail(rt, sender_id=saved.id, unsaved=unsaved, to="alice@example.org")
    assert_refused(caught)
    assert (move.target.connections, move.target.logins) == (0, [])
    assert (move.saved.connections, move.saved.logins) == (0, [])
    assert records(rt) == []  # nothing was tried, so nothing is recorded

    unsaved = {**move.change, "password": CODE}
    send_test_mail(rt, sender_id=saved.id, unsaved=unsaved, to="alice@example.org")
    assert move.target.logins == [("PLAIN", move.login)]
    assert len(move.target.messages) == 1


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_an_edit_that_moves_the_password_must_give_it(rt: Runtime, move: Move) -> None:
    saved = service.create_sender(rt, move.saved_fields)
    with pytest.raises(ValidationError) as caught:
        service.update_sender(rt, saved.id, move.change)
    assert_refused(caught)
    assert service.get_sender(rt, saved.id) == saved  # nothing changed

    service.update_sender(rt, saved.id, {**move.change, "password": CODE})
    send_test_mail(rt, sender_id=saved.id, to="alice@example.org")
    assert (move.target.connections, move.target.logins) == (1, [("PLAIN", move.login)])


def test_an_unchanged_server_and_login_keep_the_stored_password(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("bi-login", CODE))
    saved = service.create_sender(
        rt, sender_fields(server.sender(smtp_host="localhost", username="bi-login"))
    )
    same_place = {
        "smtp_host": " LocalHost. ",  # host names compare without case and trailing dot
        "port": str(server.port),
        "encryption": "NONE",
        "username": "bi-login",
        "address": "alerts@example.com",  # a username is set: the login stays
        "display_name": "Alerts",
        "password": "",
    }
    send_test_mail(rt, sender_id=saved.id, unsaved=same_place, to="alice@example.org")
    assert server.logins == [("PLAIN", "bi-login")]
    edited = service.update_sender(rt, saved.id, same_place)
    assert (edited.address, edited.has_password) == ("alerts@example.com", True)
    send_test_mail(rt, sender_id=saved.id, to="alice@example.org")
    assert server.logins == [("PLAIN", "bi-login")] * 2


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_the_login_default_is_the_address_either_way(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=(LOGIN, CODE))
    saved = service.create_sender(rt, sender_fields(server.sender(username=None)))
    # Naming the address as the login, or an address whose domain differs only in case,
    # sends the same login to the same server.
    for unsaved in ({"username": LOGIN}, {"address": "reports@EXAMPLE.com"}):
        send_test_mail(rt, sender_id=saved.id, unsaved=unsaved, to="alice@example.org")
    assert server.logins == [("PLAIN", LOGIN)] * 2


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_clearing_the_password_or_none_stored_may_move_the_sender(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    saved_server = smtp_server(credentials=(LOGIN, CODE))
    relay = smtp_server()  # an internal relay: no login
    saved = service.create_sender(rt, sender_fields(saved_server.sender()))
    cleared = {"port": relay.port, "clear_password": True}
    send_test_mail(rt, sender_id=saved.id, unsaved=cleared, to="alice@example.org")
    assert (relay.logins, len(relay.messages)) == ([], 1)
    assert service.get_sender(rt, saved.id).has_password  # a test saves nothing

    moved = service.update_sender(rt, saved.id, cleared)
    assert (moved.port, moved.has_password) == (relay.port, False)
    moved = service.update_sender(rt, saved.id, {"port": saved_server.port})
    assert moved.port == saved_server.port  # no stored password: nothing to protect
    assert saved_server.connections == 0
