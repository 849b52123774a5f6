"""The system as deployed, for end-to-end tests: a pytest plugin with session fixtures.

A real `prefect server`, the work pools from infra/work-pools.sh, prefect.yaml applied
with `prefect deploy --all` from the repository root, and process workers on `gpu` and
`cpu` whose environment points the flows at a temporary store and inbox. Test modules
that need it say ``pytest_plugins = ["tests.deployed_system"]``, so the system starts
once per session however many modules use it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.conftest import REPO
from tests.prefect_server import PREFECT, PrefectServer, stop_workers

# Small enough for 2 cores, big enough that a model reads digits at all; the gate's floor
# is lowered so that a one-epoch model is promoted and its promotion event fires. Two
# classifiers, each a train-model run on gpu: a line reader of one short epoch reads no
# string and its gate refuses it, so it would only cost time here (tests/test_workers.py
# trains every model, the reader too, on the pool).
RETRAIN_PARAMS: dict[str, Any] = {
    "params": {
        "train": {
            "mode": "workers",
            "models": ["baseline_mlp", "simple_cnn"],
            "limit": 1500,
            "epochs": 1,
        },
        "promote": {"gate": {"max_error": 0.5}},
    }
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def load_make_scans() -> Any:
    """scripts/make_scans.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_scans", REPO / "scripts/make_scans.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DeployedSystem:
    """Server, pools, deployments and workers, with a client for the tests."""

    def __init__(self, root: Path, mnist_dir: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.store = root / "store"
        self.inbox = root / "inbox"
        self.server = PrefectServer(root / "prefect-home", self.logs)
        self.server.env.update(
            DIGITFLOW_STORE=str(self.store),
            DIGITFLOW_MNIST_SOURCE=str(mnist_dir),
            DIGITFLOW_HOME=str(REPO),
            DIGITFLOW_INBOX=str(self.inbox),
            # Three trainings share the gpu stand-in worker on 2 cores: one thread each.
            TF_NUM_INTRAOP_THREADS="1",
            TF_NUM_INTEROP_THREADS="1",
            CUDA_VISIBLE_DEVICES="",
        )
        self.workers: list[subprocess.Popen] = []

    def start(self) -> None:
        """Start the server, create the pools, deploy prefect.yaml, start the workers."""
        self.server.start()
        self.shell(["bash", "infra/work-pools.sh"], "work-pools")
        self.shell([PREFECT, "deploy", "--all", "--no-prompt"], "deploy")
        for pool in ("gpu", "cpu"):
            log = open(self.logs / f"worker-{pool}.log", "w")  # noqa: SIM115 - lives with it
            self.workers.append(
                subprocess.Popen(
                    [PREFECT, "worker", "start", "--pool", pool, "--type", "process",
                     "--name", f"test-{pool}"],
                    env=self.server.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # stop() ends the worker and its flow runs
                )
            )  # fmt: skip

    def shell(self, args: list[str], name: str) -> str:
        """Run a command from the repository root against the server; fail with its output."""
        out = subprocess.run(
            args, cwd=REPO, env={**self.server.env, "PREFECT": PREFECT},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        (self.logs / f"{name}.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def stop(self) -> None:
        stop_workers(self.workers, self._signal)  # each with the flow runs it started
        self.server.stop()

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def client(self) -> Any:
        """A synchronous Prefect client for the server."""
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.server.api_url)

    def run_deployment(self, name: str, parameters: dict[str, Any]) -> UUID:
        """Create a run of ``flow/deployment``; return its id without waiting."""
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            return client.create_flow_run_from_deployment(deployment.id, parameters=parameters).id

    def wait(self, flow_run_id: UUID, timeout_s: float) -> Any:
        """The flow run once it reached a final state."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while True:
                run = client.read_flow_run(flow_run_id)
                if run.state and run.state.type.value in FINAL:
                    return run
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"flow run {run.name} still {run.state_name} "
                        f"after {timeout_s:.0f} s; logs in {self.logs}"
                    )
                self.assert_workers_alive()
                time.sleep(1)

    def wait_for_deployment_run(self, name: str, timeout_s: float) -> Any:
        """The first run of deployment ``name`` (waited for), once it exists and ended."""
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            while True:
                runs = [
                    r for r in client.read_flow_runs(deployment_filter=only)
                    if r.state_type is None or r.state_type.value != "SCHEDULED"
                ]  # fmt: skip
                if runs:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no run of {name} within {timeout_s:.0f} s")
                time.sleep(1)
        return self.wait(runs[0].id, max(1.0, deadline - time.monotonic()))

    def assert_workers_alive(self) -> None:
        for proc in self.workers:
            assert proc.poll() is None, f"a worker exited ({proc.returncode}); see {self.logs}"

    def logs_of(self, flow_run_id: UUID) -> str:
        """The flow run's log lines, for assertion messages."""
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with self.client() as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return "\n".join(log.message for log in logs)


@dataclass
class PipelineRun:
    """A retrain run through the deployments and the scoring run its promotion started."""

    system: DeployedSystem
    retrain: Any  # FlowRun
    score: Any  # FlowRun
    seconds: dict[str, float]


@pytest.fixture(scope="session")
def deployed_system(
    tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path
) -> Iterator[DeployedSystem]:
    """The system up, with an inbox of sample scans (their truth.csv kept beside it)."""
    system = DeployedSystem(tmp_path_factory.mktemp("system"), mnist_dir)
    load_make_scans().make_sample_folder(mnist_dir, system.inbox, pages=3, seed=0)
    shutil.move(system.inbox / "truth.csv", system.root / "truth.csv")
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="session")
def pipeline_run(deployed_system: DeployedSystem) -> PipelineRun:
    """Run the retrain deployment; wait for it and for the score-folder run it triggers."""
    system = deployed_system
    start = time.monotonic()
    retrain = system.wait(system.run_deployment("retrain/retrain", RETRAIN_PARAMS), 300)
    assert retrain.state.is_completed(), (
        f"retrain ended {retrain.state_name}: {retrain.state.message}\n"
        + system.logs_of(retrain.id)
    )
    trained = time.monotonic()
    score = system.wait_for_deployment_run("score/score-folder", 240)
    assert score.state.is_completed(), (
        f"score-folder ended {score.state_name}: {score.state.message}\n" + system.logs_of(score.id)
    )
    seconds = {"retrain": trained - start, "score": time.monotonic() - trained}
    return PipelineRun(system, retrain, score, seconds)
