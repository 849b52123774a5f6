"""The score flow on the real Prefect engine: accuracy, resume, bad files, S3, Dask, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from digitflow.errors import DigitflowError, StoreError
from digitflow.scoring import batch, commits, results
from digitflow.scoring.batch import BatchSummary
from digitflow.scoring.truth import compare, read_lines, read_truth
from digitflow.storage import ObjectStore, S3Store, open_store
from flows.score import ScoreParams, score_flow
from tests.prefect_api import latest_artifact
from tests.scoring.conftest import copy_models
from tests.scoring.files import bad_and_good

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scored(champion_store: str, sample_scans: tuple[Path, Path]) -> BatchSummary:
    """The sample folder scored once, in three shards, on the default thread runner."""
    folder, _ = sample_scans
    return score_flow(ScoreParams(input=str(folder), store=champion_store, shard_size=3))


def _ledger(store: ObjectStore | str, batch_id: str) -> list[dict]:
    store = open_store(store) if isinstance(store, str) else store
    return results.read_parquet(store, f"scoring/{batch_id}/files.parquet").to_pylist()


def _snapshot(store_root: str, batch_id: str) -> dict[str, bytes]:
    root = Path(store_root, "scoring", batch_id)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_sample_folder_is_read_end_to_end(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path]
) -> None:
    folder, truth = sample_scans
    inputs = sorted(p.name for p in folder.iterdir())
    ledger = _ledger(champion_store, scored.batch_id)
    assert [r["file"] for r in ledger] == inputs  # one row per input file
    assert {r["status"] for r in ledger} == {"scored"}
    for row in ledger:  # the bytes each file was read as
        data = (folder / row["file"]).read_bytes()
        assert (row["size"], row["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (scored.files, scored.pages, scored.already_done) == (8, 10, 0)
    accuracy = compare(read_truth(truth), read_lines(ledger))
    assert accuracy.digit_accuracy >= 0.85, accuracy  # chance is 10 %
    store = open_store(champion_store)
    digits = commits.read_digits(store, scored.batch_id)
    assert len(digits) == scored.digits == sum(r["digits"] for r in ledger)
    assert len(store.list(f"scoring/{scored.batch_id}/review/")) == scored.needs_review > 0
    assert len(store.list(f"scoring/{scored.batch_id}/digits/")) == 8  # one commit per file

    table = latest_artifact("scoring-summary").data
    rows = table if isinstance(table, list) else json.loads(table)
    assert {"field": "batch_id", "value": scored.batch_id} in rows
    markdown = latest_artifact("scoring-files").data
    assert all(name in markdown for name in inputs[:5])


def test_rerun_of_the_same_folder_skips_what_is_done(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path]
) -> None:
    before = _snapshot(champion_store, scored.batch_id)
    ledger_before = _ledger(champion_store, scored.batch_id)
    again = score_flow(ScoreParams(input=str(sample_scans[0]), store=champion_store))
    assert again.batch_id == scored.batch_id  # derived from the same input and model
    assert again.already_done == again.files == scored.files
    assert again.model_dump(exclude={"already_done"}) == scored.model_dump(exclude={"already_done"})
    after = _snapshot(champion_store, scored.batch_id)
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if k != "files.parquet"} == {
        k: v for k, v in before.items() if k != "files.parquet"
    }
    assert _ledger(champion_store, scored.batch_id) == ledger_before


def test_rerun_after_a_kill_redoes_only_the_uncommitted_files(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path]
) -> None:
    killed = "killed-mid-batch"
    shutil.copytree(Path(champion_store, "scoring", scored.batch_id),
                    Path(champion_store, "scoring", killed))  # fmt: skip
    store = open_store(champion_store)
    names = [r["file"] for r in _ledger(store, scored.batch_id)]
    for name in names[2:4]:  # the kill came before these two files were committed
        store.delete(commits.commit_key(killed, name))
    store.delete(f"scoring/{killed}/files.parquet")
    summary = score_flow(
        ScoreParams(input=str(sample_scans[0]), store=champion_store, batch_id=killed)
    )
    assert (summary.files, summary.already_done, summary.by_other_runs) == (scored.files, 6, 0)
    assert _ledger(store, killed) == _ledger(store, scored.batch_id)
    once = commits.read_digits(store, killed)
    # The same rows; each batch's review crops lie under its own prefix.
    same = [c for c in once.column_names if c != "review"]
    assert once.select(same).equals(commits.read_digits(store, scored.batch_id).select(same))
    assert len(store.list(f"scoring/{killed}/digits/")) == len(names)


def test_a_failed_shard_fails_the_flow_and_a_rerun_finishes_the_batch(
    champion_store: str, sample_scans: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch.score_shard

    def disk_full_on_pdf(*args: Any) -> batch.ShardResult:
        if "batch.pdf" in args[3]:
            raise StoreError("cannot write scoring/…: No space left on device (injected)")
        return real(*args)

    monkeypatch.setattr(batch, "score_shard", disk_full_on_pdf)
    params = ScoreParams(input=str(sample_scans[0]), store=champion_store,
                         batch_id="with-a-failure", shard_size=3)  # fmt: skip
    with pytest.raises(DigitflowError, match=r"1 of 3 shards .* failed .*No space left.* again"):
        score_flow(params)
    monkeypatch.setattr(batch, "score_shard", real)
    summary = score_flow(params)
    assert (summary.files, summary.already_done, summary.scored) == (8, 5, 8)


def test_bad_files_are_quarantined_with_their_reason_and_the_rest_scored(
    champion_store: str, tmp_path: Path
) -> None:
    cases = bad_and_good()
    for name, (data, _, _) in cases.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    summary = score_flow(ScoreParams(input=str(tmp_path), store=champion_store, shard_size=5))
    ledger = {r["file"]: r for r in _ledger(champion_store, summary.batch_id)}
    assert ledger.keys() == cases.keys()
    for name, (data, status, phrase) in cases.items():
        assert ledger[name]["status"] == status, name
        assert phrase in (ledger[name]["error"] or ""), name
        if ledger[name]["sha256"] is not None:  # kept wherever the bytes could be read
            assert ledger[name]["sha256"] == hashlib.sha256(data).hexdigest(), name
    assert ledger["truncated.png"]["size"] == len(cases["truncated.png"][0])  # read, then refused
    assert ledger["blank.png"]["digits"] == 0
    assert ledger["three pages.tif"]["digits"] == 8
    assert {line["page"] for line in ledger["three pages.tif"]["lines"]} == {0, 2}
    for name in ("cmyk.jpg", "alpha.png", "wide.tif", "sub dir/ünïcødé 数字 scan.png"):
        assert ledger[name]["digits"] == 4, name
    assert (summary.quarantined, summary.partial, summary.scored) == (6, 1, 5)


def _upload(folder: Path, bucket: str, prefix: str) -> None:
    client = boto3.client("s3")
    for path in sorted(folder.rglob("*")):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


def test_s3_input_and_s3_store_give_the_local_results(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path], s3_bucket: str
) -> None:
    _upload(sample_scans[0], s3_bucket, "in/scans")
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key="in/scans/zz archived.png", Body=b"x", StorageClass="GLACIER"
    )
    store = S3Store(s3_bucket, "digitflow")
    copy_models(champion_store, store)
    summary = score_flow(
        ScoreParams(input=f"s3://{s3_bucket}/in/scans", store=store.uri, shard_size=4)
    )
    ledger = _ledger(store, summary.batch_id)
    archived = ledger.pop()
    assert archived["file"] == "zz archived.png" and archived["status"] == "quarantined"
    assert "InvalidObjectState" in archived["error"] and "restore" in archived["error"]
    local = _ledger(champion_store, scored.batch_id)
    assert [(r["file"], r["lines"]) for r in ledger] == [(r["file"], r["lines"]) for r in local]
    assert store.list(f"scoring/{summary.batch_id}/review/")
    assert (
        summary.files_uri == f"s3://{s3_bucket}/digitflow/scoring/{summary.batch_id}/files.parquet"
    )


def test_shards_on_a_local_dask_cluster_give_the_same_results(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path]
) -> None:
    summary = score_flow(
        ScoreParams(input=str(sample_scans[0]), store=champion_store, batch_id="on-dask",
                    shard_size=3, dask="local:2")
    )  # fmt: skip
    assert summary.model_dump(exclude={"batch_id", "files_uri", "digits_uri", "review_uri"}) == (
        scored.model_dump(exclude={"batch_id", "files_uri", "digits_uri", "review_uri"})
    )
    store = open_store(champion_store)
    on_dask, on_threads = (commits.read_digits(store, b) for b in ("on-dask", scored.batch_id))
    # The same rows, but for the confidences' last bits and each batch's review prefix.
    exact = [c for c in on_dask.column_names if "confidence" not in c and c != "review"]
    assert on_dask.select(exact).equals(on_threads.select(exact))
    for column in ("confidence", "runner_up_confidence"):
        delta = pa.compute.subtract(on_dask[column], on_threads[column]).to_numpy()
        assert abs(delta).max() < 1e-4


def test_cli_scores_a_folder_and_prints_json(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DIGITFLOW_STORE", champion_store)  # restored after the test
    args = ["score", str(sample_scans[0]), "--store", champion_store, "--json",
            "--batch-id", "from-cli", "--review-threshold", "0.5"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["batch_id"] == "from-cli" and summary["files"] == scored.files
    assert summary["digits"] == scored.digits
    assert summary["needs_review"] < scored.needs_review  # a lower threshold


def test_cli_without_a_champion_says_what_to_do(
    tmp_path: Path, sample_scans: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGITFLOW_STORE", str(tmp_path))
    result = CliRunner().invoke(app, ["score", str(sample_scans[0]), "--store", str(tmp_path)])
    assert result.exit_code == 1
    assert "no champion model" in result.output and "digitflow retrain" in result.output


def test_cli_rejects_a_bad_option_before_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--review-threshold", "2"])
    assert result.exit_code == 2 and "--review-threshold" in result.output


def test_a_scan_replaced_under_its_name_is_named_and_read_by_the_next_inbox_batch(
    champion_store: str, sample_scans: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    first, second = sorted(p for p in sample_scans[0].iterdir() if p.name.startswith("scan"))[:2]
    for scan in (first, second):
        shutil.copy(scan, folder / scan.name)
    before = score_flow(ScoreParams(input=str(folder), store=champion_store, batch_id="inbox-a"))
    assert (before.files, before.changed_since_read) == (2, 0)
    (folder / first.name).write_bytes(second.read_bytes())  # re-scanned: another page
    again = score_flow(ScoreParams(input=str(folder), store=champion_store, batch_id="inbox-a"))
    assert (again.already_done, again.changed_since_read) == (2, 1)
    summary = latest_artifact("scoring-summary").data
    rows = summary if isinstance(summary, list) else json.loads(summary)
    assert {"field": "changed_since_read", "value": 1} in rows
    # The next champion's inbox batch reads the new scan, and only it.
    params = ScoreParams(input=str(folder), store=champion_store, batch_id="inbox-b",
                         rescore=False)  # fmt: skip
    after = score_flow(params)
    assert (after.files, after.already_done) == (1, 1)
    [row] = _ledger(champion_store, "inbox-b")
    [old] = [r for r in _ledger(champion_store, "inbox-a") if r["file"] == second.name]
    assert row["file"] == first.name and row["sha256"] == old["sha256"]
    assert [ln["digits"] for ln in row["lines"]] == [ln["digits"] for ln in old["lines"]]


def test_an_inbox_run_with_nothing_new_succeeds_doing_nothing(
    scored: BatchSummary, champion_store: str, sample_scans: tuple[Path, Path], tmp_path: Path
) -> None:
    # Another batch id stands for a run with the next champion: without rescore, the scans
    # the first batch read are left alone, and an empty inbox is no error either.
    params = ScoreParams(input=str(sample_scans[0]), store=champion_store, rescore=False,
                         batch_id="next-champion")  # fmt: skip
    nothing_new = score_flow(params)
    assert (nothing_new.files, nothing_new.already_done) == (0, scored.files)
    (tmp_path / "inbox").mkdir()
    empty = score_flow(ScoreParams(input=str(tmp_path / "inbox"), store=champion_store))
    assert (empty.files, empty.digits) == (0, 0)
