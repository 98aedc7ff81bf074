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
