"""The Prefect UI in a real headless Chromium after a deployed retrain and its scoring run.

Drives Debian's `chromium` (scripts/install-browser.sh) through Playwright; Playwright's
own browser downloads are never used. Screenshots land in the test's tmp directory and
are copied to out/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import SCREENSHOTS

if TYPE_CHECKING:
    from tests.deployed_system import PipelineRun

pytest_plugins = ["tests.deployed_system"]
pytestmark = [pytest.mark.slow, pytest.mark.server]

WAIT_MS = 30_000


class Pages:
    """One browser page on the server's UI that saves a screenshot per view."""

    def __init__(self, browser: Any, base_url: str, out: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(WAIT_MS)
        self.base_url = base_url
        self.out = out
        self.shots: list[Path] = []
        # What the browser said, printed if the test fails.
        self.log: list[str] = []
        self.page.on("console", lambda m: self.log.append(f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.log.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.log.append(f"failed: {r.url}"))
        self.page.on("response", self._log_error_response)

    def _log_error_response(self, response: Any) -> None:
        if response.status >= 400:
            self.log.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def show(self, path: str, *texts: str, tab: str | None = None) -> None:
        """Open ``path`` (and its ``tab``) and wait until each of ``texts`` is visible.

        On a loaded 2-core machine the UI now and then leaves a view blank (its software-
        rendered run graph competes with the server and the workers for the CPU): a view
        that stays blank for WAIT_MS is loaded once more before the test fails.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for attempt in (1, 2):
            self.page.goto(self.base_url + path, wait_until="load")
            try:
                if tab is not None:
                    self.page.locator("li.p-tab", has_text=tab).click()
                for text in texts:
                    self.page.get_by_text(text, exact=False).first.wait_for(state="visible")
                return
            except PlaywrightTimeout:
                if attempt == 2:
                    raise
                self.log.append(f"{path} ({tab}): nothing after {WAIT_MS} ms; loading it again")

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
        retrain = f"/runs/flow-run/{pipeline_run.retrain.id}"
        ui.show(retrain, pipeline_run.retrain.name, "Completed")
        # The retraining's steps, as its subflow runs.
        steps = [_only_run_of(pipeline_run, f).name for f in ("ingest", "train", "promote")]
        ui.show(retrain, *steps, tab="Subflow Runs")
        ui.shot("retrain-run")

        promote = f"/runs/flow-run/{_only_run_of(pipeline_run, 'promote').id}"
        ui.show(promote, "promotion-decision", tab="Artifacts")
        ui.shot("promote-run-artifacts")

        score = f"/runs/flow-run/{pipeline_run.score.id}"
        # The automation that started it.
        ui.show(score, pipeline_run.score.name, "score-folder on digitflow.model.promoted")
        ui.show(score, "scoring-summary", tab="Artifacts")
        ui.shot("score-run-artifacts")

        ui.show("/artifacts", "promotion-decision", "scoring-summary")
        ui.shot("artifacts")

        decision = _artifact_id(pipeline_run, "promotion-decision")
        ui.show(f"/artifacts/artifact/{decision}", "Promoted:", "Confusion matrix")
        ui.shot("artifact-promotion-decision")

        summary = _artifact_id(pipeline_run, "scoring-summary")
        model = pipeline_run.score.parameters["params"]["model"]  # the champion read them
        ui.show(f"/artifacts/artifact/{summary}", "batch_id", model)
        ui.shot("artifact-scoring-summary")
    except Exception:
        ui.shot("failure")
        print("\n".join(ui.log))
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
