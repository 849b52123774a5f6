"""The Prefect UI in a real headless Chromium after a deployed retrain and its scoring run.

Drives Debian's `chromium` (scripts/install-browser.sh) through Playwright; Playwright's
own browser downloads are never used. Screenshots land in the test's tmp directory and
are copied to out/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import REPO

if TYPE_CHECKING:
    from tests.deployed_system import PipelineRun

pytest_plugins = ["tests.deployed_system"]
pytestmark = [pytest.mark.slow, pytest.mark.server]

CHROMIUM = os.environ.get("DIGITFLOW_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "out" / "screenshots"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system's package, through Playwright."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: scripts/install-browser.sh installs it")
    from playwright.sync_api import sync_playwright  # the dev extra; an ImportError is a bug

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


class Pages:
    """One browser page on the server's UI that saves a screenshot per view."""

    def __init__(self, browser: Any, base_url: str, out: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(WAIT_MS)
        self.base_url = base_url
        self.out = out
        self.shots: list[Path] = []

    def open(self, path: str) -> Any:
        self.page.goto(self.base_url + path, wait_until="load")
        return self.page

    def see(self, text: str) -> None:
        """Wait until ``text`` is visible somewhere on the page."""
        self.page.get_by_text(text, exact=False).first.wait_for(state="visible")

    def shot(self, name: str) -> None:
        path = self.out / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)


def _artifact_id(run: PipelineRun, key: str) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with run.system.client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert artifacts, f"no artifact with key {key!r} on the server"
    return str(artifacts[0].id)


def _only_run_of(run: PipelineRun, flow_name: str) -> Any:
    """The one completed run of ``flow_name`` on the server (a subflow of the retrain)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with run.system.client() as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    (only,) = [r for r in runs if r.state and r.state.is_completed()]
    return only


def test_ui_shows_the_runs_and_their_reports(
    pipeline_run: PipelineRun, browser: Any, tmp_path: Path
) -> None:
    base_url = pipeline_run.system.server.api_url.removesuffix("/api")
    ui = Pages(browser, base_url, tmp_path)
    try:
        ui.open(f"/runs/flow-run/{pipeline_run.retrain.id}")
        ui.see(pipeline_run.retrain.name)
        ui.see("Completed")
        ui.page.locator("li.p-tab", has_text="Subflow Runs").click()
        for subflow in ("ingest", "train", "promote"):  # the retraining's steps
            ui.see(_only_run_of(pipeline_run, subflow).name)
        ui.shot("retrain-run")

        ui.open(f"/runs/flow-run/{_only_run_of(pipeline_run, 'promote').id}")
        ui.page.locator("li.p-tab", has_text="Artifacts").click()
        ui.see("promotion-decision")
        ui.shot("promote-run-artifacts")

        ui.open(f"/runs/flow-run/{pipeline_run.score.id}")
        ui.see(pipeline_run.score.name)
        ui.see("score-folder on digitflow.model.promoted")  # the automation that started it
        ui.page.locator("li.p-tab", has_text="Artifacts").click()
        ui.see("scoring-summary")
        ui.shot("score-run-artifacts")

        ui.open("/artifacts")
        ui.see("promotion-decision")
        ui.see("scoring-summary")
        ui.shot("artifacts")

        ui.open(f"/artifacts/artifact/{_artifact_id(pipeline_run, 'promotion-decision')}")
        ui.see("Promoted:")
        ui.see("Confusion matrix")
        ui.shot("artifact-promotion-decision")

        ui.open(f"/artifacts/artifact/{_artifact_id(pipeline_run, 'scoring-summary')}")
        ui.see("batch_id")
        ui.see(pipeline_run.score.parameters["params"]["model"])  # the champion read them
        ui.shot("artifact-scoring-summary")
    except Exception:
        ui.shot("failure")
        raise
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for path in ui.shots:
            shutil.copy2(path, SCREENSHOTS / path.name)
        ui.page.close()
    assert [p.name for p in ui.shots] == [
        "retrain-run.png", "promote-run-artifacts.png", "score-run-artifacts.png",
        "artifacts.png", "artifact-promotion-decision.png", "artifact-scoring-summary.png",
    ]  # fmt: skip
