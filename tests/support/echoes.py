"""A password with characters every encoding treats specially, and the forms a server may echo.

``ECHO_FORMS`` maps a name to ``password -> text``: what a server that quotes the
credentials back might put in its reply. ``echo_leaks(text)`` names the forms of
``ECHO_PASSWORD`` still readable in ``text``; ``echo_everything`` is an ``auth_echo``
for ``smtp_server`` that quotes the password in every form at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import quote, quote_plus

ECHO_PASSWORD = "Zebra Kumquat/9931+ü=&"
ECHO_LOGIN = "reports@example.com"


def _b64(data: str, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(data.encode()).decode()


ECHO_FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda pw: pw,
    "after an equals sign": lambda pw: f"pass={pw}",
    "followed by equals signs": lambda pw: f"{pw}==",
    "inside a word": lambda pw: f"user{pw}end",
    "base64": _b64,
    "base64 unpadded": lambda pw: _b64(pw).rstrip("="),
    "base64 url-safe": lambda pw: _b64(pw, urlsafe=True),
    "base64 after an equals sign": lambda pw: f"data={_b64(pw)}",
    "AUTH PLAIN": lambda pw: _b64(f"\0{ECHO_LOGIN}\0{pw}"),
    "AUTH PLAIN unpadded": lambda pw: _b64(f"\0{ECHO_LOGIN}\0{pw}").rstrip("="),
    "AUTH PLAIN with authzid": lambda pw: _b64(f"{ECHO_LOGIN}\0{ECHO_LOGIN}\0{pw}"),
    "password inside other base64": lambda pw: _b64(f"x{pw}yz"),
    "URL-encoded": lambda pw: quote(pw, safe=""),
    "URL-encoded, lower-case hex": lambda pw: quote(pw, safe="").lower(),
    "form-encoded": lambda pw: quote_plus(pw),
}


def echo_leaks(text: str) -> list[str]:
    """Which encodings of ``ECHO_PASSWORD`` appear in ``text`` (URL forms in any case)."""
    found = [name for name, form in ECHO_FORMS.items() if form(ECHO_PASSWORD) in text]
    lowered = text.lower()
    found += [
        name
        for name, form in (
            ("quote", quote(ECHO_PASSWORD, safe="")),
            ("plus", quote_plus(ECHO_PASSWORD)),
        )
        if form.lower() in lowered
    ]
    core = _b64(ECHO_PASSWORD).rstrip("=")[:-1]  # what any base64 of the password carries
    return found + (["base64 core"] if core in text else [])


def echo_everything(login: str, password: str) -> str:
    return "535 5.7.8 " + " ".join(form(password) for form in ECHO_FORMS.values())
