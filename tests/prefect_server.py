"""A real `prefect server` and process workers, started by fixtures on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import free_port

PREFECT = str(Path(sys.executable).with_name("prefect"))
# A Prefect 3.8 worker can hang after its first SIGTERM ("finish and stop"); its second is
# "stop now". A test's workers have nothing left to finish: the second comes soon.
WORKER_GRACE_S = 2.0

Signal = Callable[[subprocess.Popen, int], None]


def send(proc: subprocess.Popen, sig: int) -> None:
    """Signal one process (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def stop_workers(workers: list[subprocess.Popen], signal_to: Signal = send) -> None:
    """End Prefect workers: SIGTERM, again after a short grace, then SIGKILL."""
    for proc in workers:
        signal_to(proc, signal.SIGTERM)
    deadline = time.monotonic() + WORKER_GRACE_S
    for proc in workers:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_to(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                signal_to(proc, signal.SIGKILL)
                proc.wait(timeout=10)


class PrefectServer:
    """A `prefect server start` process with its own home and database."""

    def __init__(self, home: Path, log_dir: Path) -> None:
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.home = home
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        self._spawn(
            "server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
            if self.procs[0].poll() is not None:
                break
        raise RuntimeError(f"prefect server did not start; see {self.log_dir / 'server.log'}")

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str) -> str:
        """Run a `prefect` CLI command against this server."""
        out = subprocess.run(
            [PREFECT, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if out.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start_worker(self, pool: str) -> subprocess.Popen:
        """A process worker polling ``pool``."""
        return self._spawn(
            f"worker-{pool}", [PREFECT, "worker", "start", "--pool", pool, "--type", "process"]
        )

    def stop(self) -> None:
        if not self.procs:  # never started
            return
        server, *workers = self.procs
        stop_workers(workers)
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    @contextmanager
    def client_settings(self) -> Iterator[None]:
        """Point this process's Prefect client at the server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield
