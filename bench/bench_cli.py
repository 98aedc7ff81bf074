"""Benchmark of the CLI's start-up: ``postdesk --version``, ``--help`` and ``providers``.

Runs ``python -c pass`` and each command in turn, ``--runs`` rounds (15 unless given),
so that a busy machine slows them all alike, and prints the median wall time of each, its
median CPU time (user + system) and its ratio to ``python -c pass`` measured in the same
run. The bar is a median wall time under 0.3 s for every command. The commands run as the
``postdesk`` script beside this interpreter, or as ``python -m postdesk`` without one.

    .venv/bin/python bench/bench_cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAR_S = 0.3
COMMANDS = (("--version",), ("--help",), ("providers",))


def postdesk() -> list[str]:
    script = Path(sys.executable).with_name("postdesk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "postdesk"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv``, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)  # noqa: S603
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def measure(
    cases: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, list[tuple[float, float]]]:
    """Each case once per round, in turn, for ``runs`` rounds (one warm-up round first)."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for round_ in range(runs + 1):
        for name, argv in cases.items():
            sample = timed(argv, env)
            if round_:
                samples[name].append(sample)
    return samples


def report(samples: dict[str, list[tuple[float, float]]], runs: int) -> bool:
    medians = {
        name: (statistics.median(w for w, _ in runs_), statistics.median(c for _, c in runs_))
        for name, runs_ in samples.items()
    }
    baseline = medians["python -c pass"][0]
    print(f"CLI start-up, {runs} runs of each, in turn (median; CPU = user + system)\n")
    passed = True
    for name, (wall, cpu) in medians.items():
        gated = name != "python -c pass"
        flag = " !" if gated and wall >= BAR_S else ""
        passed = passed and not flag
        print(f"{name:24s} {wall:6.3f} s  (CPU {cpu:6.3f} s)  ratio: {wall / baseline:5.1f}x{flag}")
    verdict = "every command starts" if passed else "NOT every command starts"
    print(f"\n{verdict} in under {BAR_S} s (! marks a miss)")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as home:
        # An empty home of its own: the commands measured must not need (or touch) data.
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
        env["POSTDESK_HOME"] = home
        cases = {"python -c pass": [sys.executable, "-c", "pass"]}
        cases |= {f"postdesk {' '.join(args)}": [*postdesk(), *args] for args in COMMANDS}
        samples = measure(cases, runs, env)
    return 0 if report(samples, runs) else 1


if __name__ == "__main__":
    sys.exit(main())
