"""End-to-end tests with real processes; helpers to run the embedded worker in a subprocess.

``WorkerProcess`` starts ``python -c WORKER_SCRIPT``: a process that opens the runtime from
``POSTDESK_*`` variables, runs ``EmbeddedWorker`` and prints ``ready``; on SIGTERM it stops
the worker and prints the worker's ``state()`` as JSON. SIGKILL plays a crash.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

WORKER_SCRIPT = """
import json, signal, sys, threading
from postdesk.config import Settings
from postdesk.services.runtime import open_runtime
from postdesk.worker.embedded import EmbeddedWorker

batch_size, poll_interval = int(sys.argv[1]), float(sys.argv[2])
rt = open_runtime(Settings.from_env())
worker = EmbeddedWorker(rt, poll_interval=poll_interval, batch_size=batch_size)
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())
worker.start()
print("ready", flush=True)
stopping.wait()
worker.stop(timeout=20)
print(json.dumps(worker.state()), flush=True)
rt.close()
"""


def worker_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The test's own environment without POSTDESK_* settings, plus the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    env.update(POSTDESK_HOME=str(home), POSTDESK_DATABASE_URL=database_url, **extra)
    return env


class WorkerProcess:
    """One worker process; its stderr (logs) goes to ``log_path``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        batch_size: int = 10,
        poll_interval: float = 0.05,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(batch_size), str(poll_interval)],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the runtime is open
        assert line.strip() == "ready", f"the worker did not start: {self.logs()}"

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the worker's final ``state()``."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, self.logs()
        state: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return state

    def close(self) -> None:
        """Make sure the process is gone (after a failed test, say)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class ServeProcess:
    """``postdesk serve`` as users start it; its output goes to ``log_path``."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int) -> None:
        self.log_path = log_path
        self.port = port
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postdesk", "serve", "--port", str(port)],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, f"serve exited: {self.logs()}"
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):  # noqa: S310
                    return True
            except OSError:
                return False

        wait_until(answers, timeout=60, what="postdesk serve to answer /healthz")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Ctrl-C: a clean stop."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        assert self.process.returncode == 0, self.logs()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_json(url: str, body: Any, token: str) -> Any:
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())
