"""The CLI starts at once: building the app loads neither the services nor the web stack.

Nothing is timed here (``bench/bench_cli.py`` times it); the tests look at which packages
a real process has loaded after importing the app, or after running a light command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from postdesk import __version__
from postdesk.cli import worker as worker_command
from postdesk.domain.providers import PROVIDERS
from postdesk.worker import celery_app

# Packages that only a command doing real work may load (storage, web, queue, crypto).
HEAVY = (
    "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "jinja2", "celery",
    "aiosmtplib", "cryptography", "argon2", "email_validator",
)  # fmt: skip

# Runs the root app as the entry point does, then prints the heavy packages it loaded.
RUN_AND_LIST = """
import json, sys
heavy = set(json.loads(sys.argv[1]))
sys.argv = ["postdesk", *sys.argv[2:]]
try:
    from postdesk.cli.app import main
    main()
except SystemExit:
    pass
finally:
    loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
    sys.stderr.write("loaded: " + json.dumps(loaded) + "\\n")
"""


def run(home: Path, *args: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """``postdesk ARGS`` in a fresh interpreter: the heavy packages it loaded, and the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    env.update({"POSTDESK_HOME": str(home), "COLUMNS": "200"})
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, json.dumps(HEAVY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = done.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("loaded: "), done.stderr
    return json.loads(last.removeprefix("loaded: ")), done


def test_importing_the_app_loads_no_heavy_package() -> None:
    code = (
        "import json, sys; import postdesk.cli.app; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert sorted(set(json.loads(done.stdout)) & set(HEAVY)) == []


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["sender", "--help"]])
def test_version_and_help_load_no_heavy_package(tmp_path: Path, args: list[str]) -> None:
    loaded, done = run(tmp_path, *args)
    assert done.stdout.strip()
    assert loaded == []
    assert not (tmp_path / "postdesk.db").exists()


def test_version_prints_the_version(tmp_path: Path) -> None:
    _, done = run(tmp_path, "--version")
    assert done.stdout.strip() == f"postdesk {__version__}"


def test_providers_prints_the_presets_without_heavy_packages(tmp_path: Path) -> None:
    loaded, done = run(tmp_path, "providers")
    assert loaded == []
    for preset in PROVIDERS:
        assert preset.key in done.stdout
        assert preset.name in done.stdout
        assert (preset.smtp_host or "(server's IP)") in done.stdout
    loaded, as_json = run(tmp_path, "providers", "--json")
    assert loaded == []
    assert [p["key"] for p in json.loads(as_json.stdout)] == [p.key for p in PROVIDERS]


def test_a_command_doing_work_still_loads_the_services(tmp_path: Path) -> None:
    loaded, done = run(tmp_path, "sender", "list", "--json")
    assert done.stdout.strip() == "[]", done.stderr
    assert "sqlalchemy" in loaded


def test_the_worker_drain_default_is_the_celery_apps() -> None:
    assert worker_command.DRAIN_EVERY_S == celery_app.DRAIN_EVERY_S
