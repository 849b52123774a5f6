"""The system end to end, as deployed: prefect.yaml on a real server with process workers.

A retrain run of the `retrain` deployment (on `cpu`) trains its models as `train-model`
runs on `gpu`, promotes a champion, and the promotion event starts a `score-folder` run
that scores the inbox into the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

from digitflow import registry
from digitflow.storage import LocalStore
from tests.conftest import REPO, free_port
from tests.prefect_server import PREFECT

if TYPE_CHECKING:
    from tests.deployed_system import DeployedSystem, PipelineRun

pytest_plugins = ["tests.deployed_system"]
pytestmark = [pytest.mark.slow, pytest.mark.server]


def _running(pid: int) -> bool:
    """A live process (a zombie left for init to reap has an empty command line)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()[:400]
    except OSError as exc:
        return str(exc)


def test_up_and_down_bring_the_local_system_up_and_stop_it(tmp_path: Path) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    state, port = tmp_path / "state", free_port()
    env = {
        **os.environ, "PORT": str(port), "DIGITFLOW_STATE": str(state),
        "DIGITFLOW_STORE": str(tmp_path / "store"), "VENV": str(Path(sys.executable).parents[1]),
    }  # fmt: skip
    run = {"cwd": REPO, "env": env, "capture_output": True, "text": True, "timeout": 300}
    pids: dict[str, int] = {}
    try:  # down.sh runs whatever happens, and stops whatever up.sh started
        up = subprocess.run(["bash", "infra/up.sh"], **run)
        pids = {p.stem: int(p.read_text()) for p in (state / "system").glob("*.pid")}
        assert up.returncode == 0, up.stdout + up.stderr
        assert {"server", "worker-cpu", "worker-gpu-0"} <= set(pids)
        gone = {name: (_status(pid), (state / "system" / f"{name}.log").read_text()[-2000:])
                for name, pid in pids.items() if not _running(pid)}  # fmt: skip
        assert not gone, f"not running after up.sh: {gone}\n{up.stdout}\n{up.stderr}"
        with SyncPrefectClient(f"http://127.0.0.1:{port}/api") as client:
            names = {d.name for d in client.read_deployments()}
            assert names == {"retrain", "train-model", "score-folder"}
            deadline = time.monotonic() + 60
            while not all(client.read_workers_for_work_pool(p) for p in ("gpu", "cpu")):
                assert time.monotonic() < deadline, "the workers never polled their pools"
                time.sleep(1)
        again = subprocess.run(["bash", "infra/up.sh"], **run)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "server: already running" in again.stdout
        assert {int(p.read_text()) for p in (state / "system").glob("*.pid")} == set(pids.values())
    finally:
        down = subprocess.run(["bash", "infra/down.sh"], **run)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(_running(pid) for pid in pids.values())
    assert not list((state / "system").glob("*.pid"))


def test_prefect_yaml_deploys_pools_schedules_and_trigger(deployed_system: DeployedSystem) -> None:
    with deployed_system.client() as client:
        deployments = {
            name: client.read_deployment_by_name(name)
            for name in ("retrain/retrain", "train-model/train-model", "score/score-folder")
        }
        automations = client.read_automations_by_name("score-folder on digitflow.model.promoted")
    pools = {name: d.work_pool_name for name, d in deployments.items()}
    assert pools == {
        "retrain/retrain": "cpu", "train-model/train-model": "gpu", "score/score-folder": "cpu"
    }  # fmt: skip
    retrain, score = deployments["retrain/retrain"], deployments["score/score-folder"]
    assert [s.schedule.cron for s in retrain.schedules if s.active] == ["0 3 * * 1"]
    assert [s.schedule.interval.total_seconds() for s in score.schedules if s.active] == [600]
    assert retrain.parameters == {"params": {"train": {"mode": "workers"}}}
    inbox = str(deployed_system.inbox)
    assert score.parameters == {"params": {"input": inbox, "rescore": False, "layout": "auto"}}
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    for deployment in deployments.values():  # the workers run the flows from this checkout
        assert deployment.pull_steps == pull
    assert len(automations) == 1 and automations[0].enabled
    trigger, action = automations[0].trigger, automations[0].actions[0]
    assert trigger.expect == {"digitflow.model.promoted"}
    assert action.deployment_id == score.id
    assert action.parameters["params"]["rescore"] is False


def test_retrain_promotes_and_the_promotion_scores_the_inbox(pipeline_run: PipelineRun) -> None:
    system = pipeline_run.system
    store = LocalStore(system.store)
    champion, _ = registry.current_champion(store)
    assert champion is not None, "the retrain run promoted no champion"
    assert champion.training_run in champion.id

    score = pipeline_run.score
    assert score.created_by is not None and score.created_by.type == "AUTOMATION"
    assert score.parameters["params"]["model"] == champion.id
    assert score.parameters["params"]["store"] == str(system.store)
    assert score.parameters["params"]["input"] == str(system.inbox)

    batches = [k.split("/")[1] for k in store.list("scoring/") if k.endswith("/files.parquet")]
    assert len(batches) == 1, batches
    files = pq.read_table(system.store / "scoring" / batches[0] / "files.parquet").to_pylist()
    inbox = sorted(p.name for p in system.inbox.iterdir())
    assert sorted(row["file"] for row in files) == inbox  # every scan, once
    scored = [row for row in files if row["status"] != "quarantined"]
    assert len(scored) == len(inbox), [(r["file"], r["error"]) for r in files]
    assert sum(row["digits"] for row in files) > 20
    assert all(champion.id in row["model_version"] for row in files)


@pytest.mark.parametrize("pool", ["gpu", "cpu"])
def test_server_accepts_kubernetes_templates(deployed_system: DeployedSystem, pool: str) -> None:
    template = REPO / f"infra/kubernetes/{pool}-base-job-template.json"
    deployed_system.server.cli(
        "work-pool", "create", f"k8s-{pool}", "--type", "kubernetes",
        "--base-job-template", str(template),
    )  # fmt: skip
    with deployed_system.client() as client:
        created = client.read_work_pool(f"k8s-{pool}")
    assert created.type == "kubernetes"
    assert created.base_job_template == json.loads(template.read_text())


def test_deploy_refuses_without_the_inbox(deployed_system: DeployedSystem) -> None:
    """Without DIGITFLOW_INBOX the build step stops `prefect deploy` (last: on a bug it
    would leave score-folder reading nothing)."""
    env = {k: v for k, v in deployed_system.server.env.items() if k != "DIGITFLOW_INBOX"}
    out = subprocess.run(
        [PREFECT, "deploy", "--name", "score-folder", "--no-prompt"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert "DIGITFLOW_INBOX is not set" in out.stdout + out.stderr
