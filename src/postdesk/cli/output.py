"""Console output for the CLI: results on stdout, messages on stderr, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_value(value: object) -> None:
    """A bare value (an id, a token) alone on stdout, for scripts to capture."""
    sys.stdout.write(f"{value}\n")
