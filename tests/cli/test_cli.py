"""The ``postdesk`` command as users and scripts run it: a real process, real storage."""

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from postdesk import __version__
from tests.support import free_port

SECRET = "Zq9-cli-secret-ÄÖ-4411"


class Cli:
    """Runs ``python -m postdesk`` with its own POSTDESK_HOME."""

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
        self.env["POSTDESK_HOME"] = str(home)
        self.env["COLUMNS"] = "200"
        if database_url:
            self.env["POSTDESK_DATABASE_URL"] = database_url

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "postdesk", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def add_sender(self, *extra: str, address: str = "reports@example.com") -> int:
        done = self(
            "sender", "add", "--host", "smtp.example.com", "--port", "587", "--encryption",
            "tls", "--address", address, "--display-name", "Reports", *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return int(done.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def test_version(cli: Cli) -> None:
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"postdesk {__version__}"


def test_add_prints_the_id_alone_and_never_the_password(cli: Cli) -> None:
    done = cli(
        "sender", "add", "--preset", "qq", "--address", "bi#reports&ops@example.com",
        "--display-name", "BI Reports", "--password-stdin", stdin=SECRET + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sender_id = int(done.stdout)
    listing = cli("sender", "list", "--json")
    shown = cli("sender", "show", str(sender_id), "--json")
    table = cli("sender", "list")
    for output in (done, listing, shown, table):
        assert SECRET not in output.stdout + output.stderr
    [sender] = json.loads(listing.stdout)
    assert sender == json.loads(shown.stdout)
    assert sender["id"] == sender_id
    assert sender["has_password"] is True
    assert (sender["smtp_host"], sender["port"], sender["encryption"]) == (
        "smtp.qq.com",
        465,
        "ssl",
    )
    assert "bi#reports&ops@example.com" in table.stdout


def test_invalid_input_exits_2_with_code_message_and_hint(cli: Cli) -> None:
    done = cli(
        "sender", "add", "--host", "reports@qq.com", "--address", "alice@example.org)<bob@x.com>",
        "--display-name", " ",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: validation_error: ")
    assert "smtp_host" in lines[0] and "address" in lines[0] and "display_name" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_duplicate_address_exits_2_sender_exists(cli: Cli) -> None:
    cli.add_sender()
    done = cli(
        "sender", "add", "--host", "smtp.example.com", "--address", "Reports@example.com",
        "--display-name", "Again",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: sender_exists: ")


def test_edit_keeps_password_unless_replaced(cli: Cli) -> None:
    sender_id = cli.add_sender("--password-stdin")
    assert cli("sender", "show", str(sender_id), "--json").returncode == 0
    edited = cli("sender", "edit", str(sender_id), "--display-name", "Renamed")
    assert edited.returncode == 0, edited.stderr
    shown = json.loads(cli("sender", "show", str(sender_id), "--json").stdout)
    assert shown["display_name"] == "Renamed"
    assert shown["has_password"] is False  # --password-stdin got an empty stdin: no password
    cli("sender", "edit", str(sender_id), "--password-stdin", stdin="code\n")
    cli("sender", "edit", str(sender_id), "--timeout", "10")
    assert json.loads(cli("sender", "show", str(sender_id), "--json").stdout)["has_password"]
    cli("sender", "edit", str(sender_id), "--clear-password")
    assert not json.loads(cli("sender", "show", str(sender_id), "--json").stdout)["has_password"]


def test_edit_that_moves_the_stored_password_must_give_it(cli: Cli, smtp_server: Any) -> None:
    login = ("reports@example.com", SECRET)
    saved = smtp_server(credentials=login)
    other = smtp_server(host="127.0.0.2", port=saved.port, credentials=login)
    sender_id = int(
        cli(
            "sender", "add", "--host", saved.host, "--port", str(saved.port), "--encryption",
            "none", "--address", login[0], "--display-name", "Reports", "--password-stdin",
            stdin=SECRET,
        ).stdout
    )  # fmt: skip
    refused = cli("sender", "edit", str(sender_id), "--host", other.host)
    assert refused.returncode == 2
    error, hint = refused.stderr.strip().splitlines()
    assert error.startswith("error: validation_error: password: the mail server changed: ")
    assert hint.startswith("hint: ") and "only to the server" in hint
    shown = json.loads(cli("sender", "show", str(sender_id), "--json").stdout)
    assert shown["smtp_host"] == saved.host

    moved = cli("sender", "edit", str(sender_id), "--host", other.host, "--password-stdin",
                stdin=f"{SECRET}\n")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    tested = cli("sender", "test", str(sender_id), "--to", "alice@example.org")
    assert tested.returncode == 0, tested.stderr
    assert other.logins == [("PLAIN", login[0])]
    assert saved.connections == 0
    assert "warning: The password crossed the network unencrypted" in tested.stderr
    assert SECRET not in refused.stderr + tested.stderr


def test_default_sender_show_set_clear_and_delete(cli: Cli) -> None:
    first = cli.add_sender()
    second = cli.add_sender(address="alerts@example.com")
    assert "not configured" in cli("sender", "default").stdout
    assert cli("sender", "default", str(first)).returncode == 0
    assert json.loads(cli("sender", "default", "--json").stdout) == {
        "default_sender_id": first,
        "configured": True,
    }
    deleted = cli("sender", "delete", str(first))
    assert deleted.returncode == 0
    assert "not configured" in deleted.stderr
    assert json.loads(cli("sender", "default", "--json").stdout)["configured"] is False
    cli("sender", "default", str(second))
    cleared = cli("sender", "default", "--clear", "--json")
    assert json.loads(cleared.stdout) == {"default_sender_id": None, "configured": False}
    missing = cli("sender", "default", "999")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: validation_error: ")


def test_unknown_sender_exits_2_not_found(cli: Cli) -> None:
    done = cli("sender", "show", "77")
    assert done.returncode == 2
    assert done.stderr.startswith("error: not_found: ")


def test_providers_lists_the_presets(cli: Cli) -> None:
    presets = {p["key"]: p for p in json.loads(cli("providers", "--json").stdout)}
    assert presets["qq"]["smtp_host"] == "smtp.qq.com"
    assert presets["qq"]["authorization_code"] is True
    assert set(presets["qq"]) == {
        "key", "name", "smtp_host", "port", "encryption", "authorization_code", "help",
    }  # fmt: skip


def test_admin_create_reads_the_password_from_stdin(cli: Cli) -> None:
    done = cli(
        "admin", "create", "--username", "admin", "--password-stdin", stdin="a long passphrase\n"
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 1
    again = cli(
        "admin", "create", "--username", "admin", "--password-stdin", stdin="another passphrase"
    )
    assert again.returncode == 2
    short = cli("admin", "create", "--username", "root2", "--password-stdin", stdin="short")
    assert short.returncode == 2
    assert "password" in short.stderr


def test_db_upgrade(cli: Cli) -> None:
    done = cli("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "revision" in done.stderr


def test_malformed_secret_key_is_a_clear_config_error(cli: Cli) -> None:
    cli.env["POSTDESK_SECRET_KEY"] = "not-a-key"
    done = cli("sender", "list")
    assert done.returncode == 2
    assert done.stderr.startswith("error: config_error: ")
    assert "hint: " in done.stderr
    assert "Traceback" not in done.stderr


def test_postgresql_database_url(postgres_url: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", postgres_url)
    sender_id = cli.add_sender()
    [sender] = json.loads(cli("sender", "list", "--json").stdout)
    assert sender["id"] == sender_id
    assert not (tmp_path / "home" / "postdesk.db").exists()


def get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback only)
    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
        return json.loads(response.read())


def test_serve_creates_its_home_answers_healthz_and_stops_on_ctrl_c(cli: Cli) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "postdesk", "serve", "--port", str(port)],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        startup = read_until(process.stderr, "listening on")
        [link] = [line.strip() for line in startup if "/setup?token=" in line]
        assert wait_for_health(port) == {"status": "ok", "mail_service_configured": False}
        admin_token = cli("token", "create", "--name", "ops", "--scope", "admin").stdout.strip()
        health = get_json(f"http://127.0.0.1:{port}/healthz", admin_token)
        assert health["database"] == "ok"
        assert health["worker"]["running"] is True
        assert (cli.home / "postdesk.db").is_file()
        assert stat.S_IMODE((cli.home / "secret.key").stat().st_mode) == 0o600
        assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700
        use_setup_link(link)
    finally:
        process.send_signal(2)  # SIGINT, as Ctrl-C sends
        out, rest = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    log = "".join(startup) + rest + out  # uvicorn's access log goes to stdout
    assert "Traceback" not in log
    token = link.split("token=", 1)[1]
    assert log.count(token) == 1, "the setup token must not reach the access log"
    assert "token=***" in log


def read_until(stream: Any, marker: str) -> list[str]:
    lines: list[str] = []
    while not lines or marker not in lines[-1]:
        line = stream.readline()
        assert line, "serve exited early: " + "".join(lines)
        lines.append(line)
    return lines


def wait_for_health(port: int) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return get_json(f"http://127.0.0.1:{port}/healthz")
        except OSError:
            time.sleep(0.1)
    raise AssertionError("serve did not answer /healthz")


def use_setup_link(link: str) -> None:
    """Create the first administrator through the one-time link; the link is then spent."""
    with urllib.request.urlopen(link, timeout=5) as page:  # noqa: S310 (loopback only)
        assert 'name="username"' in page.read().decode()
    token = link.split("token=", 1)[1]
    form = urllib.parse.urlencode(
        {"token": token, "username": "admin", "password": "a long passphrase"}
    ).encode()
    post = urllib.request.Request(link.split("?")[0], data=form, method="POST")  # noqa: S310
    with urllib.request.urlopen(post, timeout=10) as done:  # noqa: S310 (loopback only)
        assert "Administrator created" in done.read().decode()
    with pytest.raises(urllib.error.HTTPError) as spent:
        urllib.request.urlopen(link, timeout=5)  # noqa: S310 (loopback only)
    assert spent.value.code == 404
    spent.value.close()  # the error holds the answer, and with it the connection


def test_token_create_prints_the_token_once_and_delete_revokes_it(cli: Cli) -> None:
    created = cli("token", "create", "--name", "reports", "--scope", "send")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("pd_")
    listing = cli("token", "list", "--json")
    [entry] = json.loads(listing.stdout)
    assert entry["name"] == "reports"
    assert entry["scope"] == "send"
    assert token not in listing.stdout
    bad = cli("token", "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: validation_error: ")
    assert cli("token", "delete", str(entry["id"])).returncode == 0
    assert json.loads(cli("token", "list", "--json").stdout) == []
