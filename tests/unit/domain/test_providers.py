"""Provider presets: the SPEC's providers, each with usable settings and help."""

import pytest

from postdesk.domain.providers import PROVIDERS, find_provider, provider_for_host
from postdesk.domain.senders import validate_sender

REQUIRED_HOSTS = {
    "qq": "smtp.qq.com",
    "exmail": "smtp.exmail.qq.com",
    "163": "smtp.163.com",
    "126": "smtp.126.com",
    "gmail": "smtp.gmail.com",
    "office365": "smtp.office365.com",
}


@pytest.mark.parametrize(("key", "host"), REQUIRED_HOSTS.items())
def test_spec_providers_have_their_hosts(key: str, host: str) -> None:
    provider = find_provider(key)
    assert provider is not None and provider.smtp_host == host


def test_fixed_settings_of_the_spec() -> None:
    exmail, office, exchange = (find_provider(k) for k in ("exmail", "office365", "exchange"))
    assert exmail and (exmail.port, exmail.encryption.value) == (465, "ssl")
    assert office and (office.port, office.encryption.value) == (587, "tls")
    assert exchange and exchange.name == "Microsoft Exchange (on-premises)"
    assert (exchange.smtp_host, exchange.encryption.value) == ("", "none")


def test_other_providers_are_offered() -> None:
    names = " ".join(p.name for p in PROVIDERS)
    for name in ("Yahoo", "iCloud", "Zoho", "Alibaba"):
        assert name in names


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.key)
def test_each_preset_is_a_valid_sender_with_short_help(provider) -> None:  # type: ignore[no-untyped-def]
    host = provider.smtp_host or "192.0.2.10"
    validate_sender(
        {
            "smtp_host": host,
            "port": provider.port,
            "encryption": provider.encryption.value,
            "address": "reports@example.com",
            "display_name": "Reports",
        }
    )
    sentences = [s for s in provider.help.split(". ") if s.strip()]
    assert 1 <= len(sentences) <= 2
    if provider.authorization_code:
        assert "code" in provider.help or "app" in provider.help.lower()


def test_provider_keys_are_unique_and_host_lookup_works() -> None:
    assert len({p.key for p in PROVIDERS}) == len(PROVIDERS)
    found = provider_for_host("SMTP.163.com.")
    assert found is not None and found.key == "163"
    assert provider_for_host("mail.example.com") is None
