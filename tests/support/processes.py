"""Child processes the tests run and watch, ``wait_until`` to poll them, ``post_json`` to call them.

``LoggedProcess`` is the base: a child whose output goes to a log file, gone after ``close``;
``ServeProcess`` is ``postdesk serve``.
``WorkerProcess`` starts ``python -c WORKER_SCRIPT``: a process that opens the runtime from
``POSTDESK_*`` variables, runs ``EmbeddedWorker`` and prints ``ready``; on SIGTERM it stops
the worker and prints the worker's ``state()`` as JSON. SIGKILL plays a crash.
"""

from __future__ import annotations

import json
import os
import signal
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


class LoggedProcess:
    """A child process whose output goes to ``log_path``; ``close`` makes sure it is gone.

    ``stdout_pipe``: the child's stdout stays a text pipe the test reads (stderr alone
    goes to the log); otherwise both go to the log.
    """

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        stdout_pipe: bool = False,
        new_session: bool = False,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            args,
            env=dict(env),
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log if stdout_pipe else subprocess.STDOUT,
            text=True,
            start_new_session=new_session,
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

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


class WorkerProcess(LoggedProcess):
    """One worker process; its stderr (logs) goes to ``log_path``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        batch_size: int = 10,
        poll_interval: float = 0.05,
    ) -> None:
        args = [sys.executable, "-c", WORKER_SCRIPT, str(batch_size), str(poll_interval)]
        super().__init__(args, env, log_path, stdout_pipe=True)

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the runtime is open
        assert line.strip() == "ready", f"the worker did not start: {self.logs()}"

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the worker's final ``state()``."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, self.logs()
        state: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return state


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class ServeProcess(LoggedProcess):
    """``postdesk serve`` as users start it; its output goes to ``log_path``."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int) -> None:
        self.port = port
        super().__init__(
            [sys.executable, "-m", "postdesk", "serve", "--port", str(port)], env, log_path
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

    def stop(self) -> None:
        """Ctrl-C: a clean stop."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        assert self.process.returncode == 0, self.logs()


def post_json(url: str, body: Any, token: str) -> Any:
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())
