"""The encryption of an SMTP connection: a leaf of the domain, cheap to import (the CLI's
provider presets use it without loading address validation)."""

from __future__ import annotations

import enum


class Encryption(enum.StrEnum):
    """How the SMTP connection is protected."""

    SSL = "ssl"  # implicit TLS from the first byte ("SMTPS", usually 465)
    TLS = "tls"  # plain connect, then STARTTLS, never falling back (usually 587 or 25)
    NONE = "none"
