"""Settings come from POSTDESK_* variables and are validated at start."""

from pathlib import Path

import pytest

from postdesk.config import Settings
from postdesk.errors import ConfigError


def test_defaults_put_the_database_in_the_home_folder(tmp_path: Path) -> None:
    settings = Settings.from_env({"POSTDESK_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'postdesk.db'}"
    assert settings.key_file == tmp_path / "secret.key"
    assert settings.retry_delays == (60, 300, 900, 1800)
    assert (settings.lease_s, settings.record_retention_days) == (60, 365)
    assert settings.broker_url is None and settings.trusted_proxies == ()


def test_values_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "POSTDESK_HOME": str(tmp_path),
            "POSTDESK_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db",
            "POSTDESK_RETRY_DELAYS": "1,2,3",
            "POSTDESK_LEASE_S": "5",
            "POSTDESK_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
        }
    )
    assert not settings.is_sqlite
    assert settings.retry_delays == (1, 2, 3) and settings.lease_s == 5
    assert [str(n) for n in settings.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POSTDESK_RETRY_DELAYS", "60,soon"),
        ("POSTDESK_LEASE_S", "0"),
        ("POSTDESK_RECORD_RETENTION_DAYS", "forever"),
        ("POSTDESK_TRUSTED_PROXIES", "proxy.example.com"),
        ("POSTDESK_DATABASE_URL", "mysql://root:hunter2@localhost/db"),
    ],
)
def test_bad_values_are_config_errors(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"POSTDESK_HOME": str(tmp_path), name: value})
    assert name in caught.value.message
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize(
    ("raw", "public_url", "https_only"),
    [
        ("https://mail.example.com/", "https://mail.example.com", True),
        ("http://127.0.0.1:8700", "http://127.0.0.1:8700", False),
        ("https://example.com/postdesk", "https://example.com/postdesk", True),
        ("", None, False),
    ],
)
def test_the_public_url_is_read(
    tmp_path: Path, raw: str, public_url: str | None, https_only: bool
) -> None:
    settings = Settings.from_env({"POSTDESK_HOME": str(tmp_path), "POSTDESK_PUBLIC_URL": raw})
    assert (settings.public_url, settings.https_only) == (public_url, https_only)


@pytest.mark.parametrize(
    "raw",
    [
        "mail.example.com",
        "/postdesk",
        "ftp://mail.example.com",
        "https://",
        "https://mail.example.com:port",
        "https://mail.example.com/?next=/",
        "https://mail.example.com/#top",
        "https://admin:hunter2@mail.example.com",
    ],
)
def test_a_bad_public_url_is_a_config_error_with_a_hint(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"POSTDESK_HOME": str(tmp_path), "POSTDESK_PUBLIC_URL": raw})
    assert "POSTDESK_PUBLIC_URL" in caught.value.message
    assert caught.value.hint and "https://" in caught.value.hint
    assert "hunter2" not in caught.value.message


def test_test_mails_go_to_any_host_on_the_usual_ports_by_default(tmp_path: Path) -> None:
    settings = Settings.from_env({"POSTDESK_HOME": str(tmp_path)})
    assert settings.test_mail_allowed_hosts is None
    assert settings.test_mail_allowed_ports == (25, 465, 587, 2525)


def test_the_test_mail_destinations_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "POSTDESK_HOME": str(tmp_path),
            "POSTDESK_TEST_MAIL_ALLOWED_HOSTS": "SMTP.Example.com., *.mail.example.org, "
            "10.0.0.0/8, 192.0.2.25, 例え.jp",
            "POSTDESK_TEST_MAIL_ALLOWED_PORTS": "587, 10025",
        }
    )
    hosts = [str(rule) for rule in settings.test_mail_allowed_hosts or ()]
    assert hosts == [
        "smtp.example.com",
        "*.mail.example.org",
        "10.0.0.0/8",
        "192.0.2.25/32",
        "xn--r8jz45g.jp",
    ]
    assert settings.test_mail_allowed_ports == (587, 10025)
    anything = Settings.from_env(
        {
            "POSTDESK_HOME": str(tmp_path),
            "POSTDESK_TEST_MAIL_ALLOWED_HOSTS": " * ",
            "POSTDESK_TEST_MAIL_ALLOWED_PORTS": "*",
        }
    )
    assert (anything.test_mail_allowed_hosts, anything.test_mail_allowed_ports) == (None, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POSTDESK_TEST_MAIL_ALLOWED_HOSTS", "smtp example com"),
        ("POSTDESK_TEST_MAIL_ALLOWED_HOSTS", "smtp.example.com,*"),
        ("POSTDESK_TEST_MAIL_ALLOWED_HOSTS", "*."),
        ("POSTDESK_TEST_MAIL_ALLOWED_HOSTS", "10.0.0"),
        ("POSTDESK_TEST_MAIL_ALLOWED_PORTS", "25,smtp"),
        ("POSTDESK_TEST_MAIL_ALLOWED_PORTS", "0"),
        ("POSTDESK_TEST_MAIL_ALLOWED_PORTS", "65536"),
        ("POSTDESK_TEST_MAIL_ALLOWED_PORTS", ","),
    ],
)
def test_bad_test_mail_destinations_are_config_errors(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"POSTDESK_HOME": str(tmp_path), name: value})
    assert name in caught.value.message
    assert caught.value.hint and "Example:" in caught.value.hint
