"""prefect.yaml and infra/ read as a platform engineer would apply them (no server here;
tests/test_system.py deploys them for real)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

DEPLOYMENTS = {"retrain", "train-model", "score-folder"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def deployment(config: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [d for d in config["deployments"] if d["name"] == name]
    return found


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [str(k), *strings(v)]]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_entrypoints_are_repo_relative_flows(config: dict[str, Any]) -> None:
    assert {d["name"] for d in config["deployments"]} == DEPLOYMENTS
    for d in config["deployments"]:
        path, _, function = d["entrypoint"].partition(":")
        assert not Path(path).is_absolute()
        tree = ast.parse((REPO / path).read_text())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_no_machine_paths_or_secrets(config: dict[str, Any]) -> None:
    for text in strings(config):
        assert not text.startswith(("/", "~")), f"machine path in prefect.yaml: {text}"
        assert not re.search(r"(?i)secret|password|access_key|token", text), text


def test_pools_schedules_and_trigger(config: dict[str, Any]) -> None:
    pools = {d["name"]: d["work_pool"]["name"] for d in config["deployments"]}
    assert pools == {"retrain": "cpu", "train-model": "gpu", "score-folder": "cpu"}
    assert deployment(config, "retrain")["parameters"]["params"]["train"]["mode"] == "workers"
    score = deployment(config, "score-folder")
    assert [s["interval"] for s in score["schedules"]] == [600]
    (trigger,) = score["triggers"]
    assert trigger["expect"] == ["digitflow.model.promoted"]
    assert trigger["match"] == {"prefect.resource.id": "digitflow.model.*"}
    assert trigger["parameters"]["params"]["rescore"] is False


def test_parameters_fit_the_flows(config: dict[str, Any]) -> None:
    """What the deployments and the trigger pass validates against the flows' models."""
    from flows.retrain import RetrainParams
    from flows.score import ScoreParams

    RetrainParams.model_validate(deployment(config, "retrain")["parameters"]["params"])
    rendered = {  # what deploy (env) and the trigger (the event) fill in
        "{{ $DIGITFLOW_INBOX }}": "/srv/inbox",
        "{{ event.payload.champion }}": "20260101T000000Z-abcdef/simple_cnn",
        "{{ event.payload.store }}": "s3://bucket/digitflow",
    }
    score = deployment(config, "score-folder")
    for params in (score["parameters"]["params"], score["triggers"][0]["parameters"]["params"]):
        filled = {k: rendered.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
        assert ScoreParams.model_validate(filled).rescore is False


def placeholders(node: Any) -> set[str]:
    return {m for s in strings(node) for m in re.findall(r"{{\s*([\w.]+)\s*}}", s)}


@pytest.mark.parametrize("pool", ["gpu", "cpu"])
def test_kubernetes_templates_render_with_their_defaults(pool: str) -> None:
    from prefect.utilities.templating import apply_values

    template = json.loads((REPO / f"infra/kubernetes/{pool}-base-job-template.json").read_text())
    variables = template["variables"]["properties"]
    assert placeholders(template["job_configuration"]) <= set(variables)
    defaults = {name: v["default"] for name, v in variables.items() if "default" in v}
    job = apply_values(template["job_configuration"], defaults)["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "digitflow-s3", "optional": True}}]
    if pool == "gpu":
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    else:
        assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
        assert "nodeSelector" not in pod


@pytest.mark.parametrize(
    "script",
    ["infra/up.sh", "infra/down.sh", "infra/work-pools.sh", "infra/check-deploy-env.sh",
     "scripts/install-browser.sh"],
)  # fmt: skip
def test_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(REPO / script)], check=True)


def test_deploy_env_check_names_what_is_missing() -> None:
    out = subprocess.run(
        ["bash", str(REPO / "infra/check-deploy-env.sh")], env={"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 1
    assert "DIGITFLOW_HOME is not set" in out.stderr
    assert "DIGITFLOW_INBOX is not set" in out.stderr
