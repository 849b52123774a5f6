"""Result tables, per-file commits, and resuming or overlapping runs of a batch (no model)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import boto3
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from digitflow.corrections import items
from digitflow.errors import ModelError, SourceError
from digitflow.imaging import DigitBox
from digitflow.scoring import batch, commits, results, resume
from digitflow.scoring.extract import FileDigits, quarantined
from digitflow.scoring.infer import ModelRef, top_two
from digitflow.storage import LocalStore, ObjectStore, open_store, parse_s3_uri

VERSION = "run/simple_cnn@0123456789ab"


def _box(line: int, position: int) -> DigitBox:
    x0, y0 = 30 * position, 40 * line
    return DigitBox(line, position, x0, y0, x0 + 20, y0 + 30, np.ones((30, 20), bool))


CONTENT = b"not read in these tests"


def _file(name: str, lines: list[int]) -> FileDigits:
    """A scored file with ``lines[k]`` digits on line k of page 0."""
    boxes = [(0, _box(line, pos)) for line, count in enumerate(lines) for pos in range(count)]
    digits = np.full((len(boxes), 28, 28), 7, np.uint8)
    return FileDigits(name, pages=1, boxes=boxes, digits=digits, size=len(CONTENT))


def _probs(reads: list[int], confidence: float = 0.99) -> np.ndarray:
    probs = np.full((len(reads), 10), (1 - confidence) / 9, np.float32)
    probs[np.arange(len(reads)), reads] = confidence
    return probs


def _reading(files: list, probs: np.ndarray, batch_id: str) -> results.ShardReading:
    return results.classified(files, probs, VERSION, 0.9, batch_id)


def test_top_two_gives_digit_confidence_and_runner_up() -> None:
    probs = np.array([[0.1, 0.6, 0.3] + [0.0] * 7, [0.0] * 9 + [1.0]], np.float32)
    digit, conf, runner, runner_conf = top_two(probs)
    assert digit.tolist() == [1, 9] and runner.tolist() == [2, 0]
    assert conf.tolist() == pytest.approx([0.6, 1.0]) and runner_conf[0] == pytest.approx(0.3)


def test_digit_and_ledger_tables() -> None:
    files = [_file("a.png", [2, 1]), quarantined("b.png", "b.png: empty"), _file("c.png", [1])]
    probs = _probs([1, 2, 3, 4])
    probs[2] = _probs([3], confidence=0.5)[0]
    digits = results.digit_table(files, probs, VERSION, threshold=0.9)
    assert digits.schema == results.DIGITS_SCHEMA
    assert digits.column("file").to_pylist() == ["a.png"] * 3 + ["c.png"]
    assert digits.column("digit").to_pylist() == [1, 2, 3, 4]
    assert digits.column("needs_review").to_pylist() == [False, False, True, False]
    assert digits.slice(1, 1).to_pylist()[0] | {"confidence": 0} == {
        "file": "a.png", "page": 0, "line": 0, "position": 1, "x0": 30, "y0": 0, "x1": 50,
        "y1": 30, "digit": 2, "confidence": 0, "runner_up": 0,
        "runner_up_confidence": pytest.approx(0.01 / 9), "needs_review": False,
        "model_version": VERSION, "review": None,
    }  # fmt: skip
    assert digits.column("review").to_pylist()[2] == results.review_key(
        "", digits.slice(2, 1).to_pylist()[0]
    )
    ledger = results.ledger_rows(files, digits, VERSION)
    assert [(r["file"], r["status"], r["digits"], r["needs_review"]) for r in ledger] == [
        ("a.png", "scored", 3, 1), ("b.png", "quarantined", 0, 0), ("c.png", "scored", 1, 0)
    ]  # fmt: skip
    assert [line["digits"] for line in ledger[0]["lines"]] == ["12", "3"]
    assert ledger[1]["error"] == "b.png: empty" and ledger[0]["error"] is None
    assert results.ledger_table(ledger).schema == results.LEDGER_SCHEMA


def test_probabilities_must_match_the_digits() -> None:
    with pytest.raises(ValueError, match="3 digits but 2 rows"):
        results.digit_table([_file("a.png", [3])], _probs([1, 2]), VERSION, 0.9)


def test_a_shard_commits_each_file_with_its_review_crops(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    files = [_file("a b.png", [2]), _file("a_b.png", [1])]  # one readable name, two files
    probs = _probs([5, 6, 7], confidence=0.4)
    probs[1] = _probs([6])[0]
    shard = commits.write_shard(store, "b1", files, _reading(files, probs, "b1"), VERSION)
    assert shard.lost == [] and shard.digits == 3 and len(shard.ledger) == 2
    for name in ("a b.png", "a_b.png"):
        assert store.exists(commits.commit_key("b1", name))
    crops = store.list("scoring/b1/review/")
    assert len(crops) == 2 and all(
        c.endswith("-p0-l0-d0-read5.png") or c.endswith("-p0-l0-d0-read7.png") for c in crops
    )
    assert all("/a_b.png-" in c for c in crops)
    assert commits.committed(store, "b1", ["a b.png", "a_b.png", "c.png"]) == {"a b.png", "a_b.png"}
    # The digits folder is the commits: readable as it stands, one row per digit.
    table = pq.read_table(store.root / "scoring/b1/digits")
    assert sorted(table.column("digit").to_pylist()) == [5, 6, 7]


def _inputs(root: Path, count: int) -> list[str]:
    names = [f"scan_{k:02d}.png" for k in range(count)]
    for name in names:
        (root / name).write_bytes(CONTENT)
    return names


def _score(
    store: ObjectStore, batch_id: str, names: list[str], read: int = 0, confidence: float = 0.99
) -> list[str]:
    """What a shard task does, with a digit per file read as (the file's number + read) % 10;
    returns the files this shard lost to another."""
    files = [_file(n, [1]) for n in names]
    reads = [(int(n[5:7]) + read) % 10 for n in names]
    probs = _probs(reads, confidence)
    return commits.write_shard(
        store, batch_id, files, _reading(files, probs, batch_id), VERSION
    ).lost


def test_resume_after_a_kill_counts_every_file_and_digit_once(tmp_path: Path) -> None:
    store, folder = LocalStore(tmp_path / "store"), tmp_path / "in"
    folder.mkdir()
    names = _inputs(folder, 10)
    plan = batch.plan_batch(store, "b", str(folder), shard_size=4)
    assert [len(s) for s in plan.shards] == [4, 4, 2]
    _score(store, "b", plan.shards[0])
    # Killed in shard 1 after two of its four files were committed.
    _score(store, "b", plan.shards[1])
    for name in plan.shards[1][2:]:
        store.delete(commits.commit_key("b", name))
    done = set(plan.shards[0] + plan.shards[1][:2])
    assert commits.committed(store, "b", names) == done
    assert len(commits.read_digits(store, "b")) == 6

    rerun = batch.plan_batch(store, "b", str(folder), shard_size=4)
    assert rerun.already_done == 6 and rerun.shards == [names[6:]]
    assert _score(store, "b", names[6:]) == []
    summary = batch.finalize(store, "b", rerun.already_done)
    assert (summary.files, summary.digits, summary.already_done) == (10, 10, 6)
    digits = commits.read_digits(store, "b")
    assert digits.column("file").to_pylist() == names  # one row per digit, none twice
    files = results.read_parquet(store, "scoring/b/files.parquet")
    assert files.column("file").to_pylist() == names


def test_overlapping_runs_cut_differently_commit_each_file_once(store_uri: str) -> None:
    store = open_store(store_uri)
    names = [f"scan_{k:02d}.png" for k in range(12)]
    cuts = [[names[k : k + size] for k in range(0, 12, size)] for size in (4, 5)]
    with ThreadPoolExecutor(6) as pool:  # two runs of one batch, every shard at once
        runs = [pool.submit(_score, store, "b", shard, r, 0.99 - 0.5 * r)
                for r, cut in enumerate(cuts) for shard in cut]  # fmt: skip
        lost = [name for run in runs for name in run.result()]
    assert sorted(lost) == names  # each file was read by both runs, and lost by one
    summary = batch.finalize(store, "b")
    assert (summary.files, summary.digits) == (12, 12)
    ledger, digits = commits.read_batch(store, "b")
    assert ledger.column("file").to_pylist() == digits.column("file").to_pylist() == names
    # Each file's rows are those of the run that committed it, never a mix.
    by_file = dict(zip(names, digits.column("digit").to_pylist(), strict=True))
    for row in ledger.to_pylist():
        assert row["lines"][0]["digits"] == str(by_file[row["file"]])
        assert row["needs_review"] == (by_file[row["file"]] != int(row["file"][5:7]) % 10)
    # The second run's reads all need review: crops are left for the files it committed only.
    wanted = results.review_keys("b", digits, ledger.to_pylist())
    assert set(store.list("scoring/b/review/")) == wanted


def test_review_crops_of_a_lost_file_are_dropped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    file = _file("scan_01.png", [1])
    sure, doubtful = _probs([1], confidence=0.99), _probs([1], confidence=0.5)
    commits.write_shard(store, "b", [file], _reading([file], sure, "b"), VERSION)
    # Another run reads it with low confidence: it writes a crop, loses, and removes it.
    lost = commits.write_shard(store, "b", [file], _reading([file], doubtful, "b"), VERSION)
    assert lost.lost == ["scan_01.png"] and len(lost.ledger) == 0
    assert store.list("scoring/b/review/") == []


def test_a_batch_of_the_layout_before_file_commits_resumes_exactly(tmp_path: Path) -> None:
    store, folder = LocalStore(tmp_path / "store"), tmp_path / "in"
    folder.mkdir()
    names = _inputs(folder, 4)
    files = [_file(n, [1]) for n in names[:3]]
    digits = results.digit_table(files, _probs([1, 2, 3]), VERSION, 0.9)
    ledger = results.ledger_table(results.ledger_rows(files, digits, VERSION))
    digits = digits.drop_columns(["review"])  # the old layout had no review column
    # Two shards of the old layout: one committed (with its ledger part), one killed.
    old = "0123456789abcdef"
    store.write_bytes(f"scoring/b/digits/part-{old}.parquet", results.parquet_bytes(digits))
    store.write_bytes(f"scoring/b/ledger/part-{old}.parquet", results.parquet_bytes(ledger))
    store.write_bytes("scoring/b/digits/part-fedcba9876543210.parquet",
                      results.parquet_bytes(digits))  # fmt: skip
    plan = batch.plan_batch(store, "b", str(folder), shard_size=4)
    assert plan.already_done == 3 and plan.shards == [names[3:]]
    _score(store, "b", names[3:])
    summary = batch.finalize(store, "b", plan.already_done)
    assert (summary.files, summary.digits) == (4, 4)
    assert not store.exists("scoring/b/digits/part-fedcba9876543210.parquet")
    assert commits.read_digits(store, "b").column("file").to_pylist() == names


def test_a_batch_keeps_its_input_and_model(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "in").mkdir()
    (tmp_path / "other").mkdir()
    ref = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    resume.open_batch(store, "b", str(tmp_path / "in"), ref)
    resume.open_batch(store, "b", str(tmp_path / "in"), ref)  # a rerun: fine
    with pytest.raises(SourceError, match="give another --batch-id"):
        resume.open_batch(store, "b", str(tmp_path / "other"), ref)
    other = ref.model_copy(update={"sha256": "b" * 64, "version": "run2/larger_cnn@bbbb"})
    with pytest.raises(ModelError, match="would mix two models.*--model run/simple_cnn"):
        resume.open_batch(store, "b", str(tmp_path / "in"), other)


def test_a_damaged_batch_record_is_named_and_stops_only_its_own_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch.json cut short: resuming that batch says which file and what to do; another
    batch of the same input, and the review listing, go on without it."""
    store = LocalStore(tmp_path / "store")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"not read here")
    ref = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    for batch_id in ("bad", "good"):
        resume.open_batch(store, batch_id, str(tmp_path / "in"), ref)
        store.write_bytes(f"scoring/{batch_id}/review/x.png", b"crop")
    store.write_bytes("scoring/bad/batch.json", b'{"input":')
    with pytest.raises(SourceError, match=r"bad/batch.json is damaged .*another --batch-id"):
        resume.open_batch(store, "bad", str(tmp_path / "in"), ref)
    assert resume.scored_elsewhere(store, "new", str(tmp_path / "in"), {"a.png": 13}, ref,
                                   "auto") == set()  # fmt: skip
    assert "scoring/bad/batch.json is damaged" in caplog.text
    assert items.batches(store) == ["good", "bad"]  # listed, last


def test_a_batch_keeps_its_review_threshold_and_another_one_is_another_batch(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "in").mkdir()
    ref = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    resume.open_batch(store, "b", str(tmp_path / "in"), ref, review_threshold=0.9)
    resume.open_batch(store, "b", str(tmp_path / "in"), ref, review_threshold=0.9)  # a rerun
    with pytest.raises(SourceError, match=r"started with --review-threshold 0.9; finishing it "
                       r"with 0.5 .* or --review-threshold 0.9"):  # fmt: skip
        resume.open_batch(store, "b", str(tmp_path / "in"), ref, review_threshold=0.5)
    resume.open_batch(store, "old", str(tmp_path / "in"), ref)  # started before it was kept
    resume.open_batch(store, "old", str(tmp_path / "in"), ref, review_threshold=0.5)
    ids = {threshold: batch.start_batch(store, str(tmp_path / "in"), None, ref, 10,
                                        review_threshold=threshold).batch_id
           for threshold in (None, 0.9, 0.5)}  # fmt: skip
    assert ids[None] == ids[0.9] != ids[0.5]  # the default's id is the id it always had


def test_a_batch_with_nothing_to_read_finalizes_empty(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    summary = batch.finalize(store, "nothing", already_done=3)
    assert (summary.files, summary.digits, summary.already_done) == (0, 0, 3)
    files = results.read_parquet(store, "scoring/nothing/files.parquet")
    assert len(files) == 0 and files.schema == results.LEDGER_SCHEMA


def test_without_rescore_a_new_model_reads_only_new_scans(tmp_path: Path) -> None:
    store, folder = LocalStore(tmp_path / "store"), tmp_path / "in"
    folder.mkdir()
    names = _inputs(folder, 4)
    first = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    resume.open_batch(store, "old", str(folder), first)
    _score(store, "old", names[:3])  # three scans read by the first champion
    second = first.model_copy(update={"sha256": "b" * 64, "version": "run2/larger_cnn@bbbb"})
    resume.open_batch(store, "new", str(folder), second)
    inbox = batch.plan_batch(store, "new", str(folder), 4, rescore=False, ref=second)
    assert inbox.already_done == 3 and inbox.shards == [names[3:]]
    everything = batch.plan_batch(store, "new", str(folder), shard_size=4, rescore=True)
    assert everything.already_done == 0 and everything.shards == [names]


def test_without_rescore_only_batches_that_read_the_same_way_count(tmp_path: Path) -> None:
    store, folder = LocalStore(tmp_path / "store"), tmp_path / "in"
    folder.mkdir()
    names = _inputs(folder, 3)
    classifier = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    resume.open_batch(store, "pages", str(folder), classifier, layout="page")
    _score(store, "pages", names)
    reader = classifier.model_copy(update={
        "model_key": "models/reader/candidates/run2/line_reader/model.keras", "role": "reader",
        "sha256": "b" * 64, "version": "run2/line_reader@bbbb",
    })  # fmt: skip
    # Read as pages, cut into digits: none of that is a reading by the line reader, nor of
    # the images as fields.
    for ref, layout in [(reader, "page"), (classifier, "field"), (reader, "auto")]:
        plan = batch.plan_batch(store, "new", str(folder), 4, False, ref, layout)
        assert (plan.already_done, plan.shards) == (0, [names]), (ref.reader, layout)
    same = classifier.model_copy(update={"sha256": "c" * 64, "version": "run3/cnn@cccc"})
    plan = batch.plan_batch(store, "new", str(folder), 4, False, same, "page")
    assert (plan.already_done, plan.shards) == (3, [])


def _commit(store: ObjectStore, batch_id: str, files: list[FileDigits]) -> list[str]:
    """Commit files as a shard task does, what they read (a digit a file) and all."""
    probs = _probs([1] * sum(len(f.boxes) for f in files))
    return commits.write_shard(
        store, batch_id, files, _reading(files, probs, batch_id), VERSION
    ).lost


def test_a_rerun_reads_again_the_files_that_could_not_be_read_and_those_replaced(
    tmp_path: Path,
) -> None:
    store, folder = LocalStore(tmp_path / "store"), tmp_path / "in"
    folder.mkdir()
    names = _inputs(folder, 5)
    gone, fixed, bad, replaced, good = names
    _commit(store, "b", [
        quarantined(gone, f"{gone}: listed, but gone when read", retry=True),
        quarantined(fixed, f"{fixed}: a symbolic link to x.png, which does not exist",
                    retry=True),
        replace(quarantined(bad, f"{bad}: not a readable image"), size=len(CONTENT)),
        replace(quarantined(replaced, f"{replaced}: truncated"), size=len(CONTENT)),
        _file(good, [1]),
    ])  # fmt: skip
    batch.finalize(store, "b")
    (folder / replaced).write_bytes(b"a good copy, of another size")
    plan = batch.plan_batch(store, "b", str(folder), shard_size=10)
    # Read again: those that could not be read, and the bad one replaced since; not the
    # one read and found bad, nor the one read.
    assert plan.shards == [[gone, fixed, replaced]] and plan.already_done == 2
    assert plan.changed == [] and set(plan.again) == {gone, fixed, replaced}
    # Its new reading replaces the quarantine: one row per file, the new one.
    assert commits.write_shard(
        store, "b", [_file(gone, [2])], _reading([_file(gone, [2])], _probs([4, 5]), "b"),
        VERSION, {gone: plan.again[gone]},
    ).lost == []  # fmt: skip
    # Before files.parquet is written again it still calls that file a quarantine; the
    # commit, as it stands, says it is read: a plan now leaves it alone.
    assert gone not in batch.plan_batch(store, "b", str(folder), shard_size=10).again
    # A second run that read it again too, from the same plan, loses: it commits nothing.
    again = {fixed: plan.again[fixed], gone: plan.again[gone]}
    twice = [_file(gone, [1]), quarantined(fixed, f"{fixed}: still broken", retry=True)]
    assert commits.write_shard(
        store, "b", twice, _reading(twice, _probs([6]), "b"), VERSION, again
    ).lost == [gone]  # fmt: skip
    # A crop of the still broken one, written by a run reading it again right now, is
    # not taken for a stray by the finalize of another.
    pending = results.line_review_key("b", fixed, 0, 0, "12")
    store.write_bytes(pending, b"a crop")
    summary = batch.finalize(store, "b")
    assert store.exists(pending)
    rows = {r["file"]: r for r in results.read_parquet(
        store, "scoring/b/files.parquet").to_pylist()}  # fmt: skip
    assert (summary.files, summary.scored, summary.quarantined) == (5, 2, 3)
    assert (rows[gone]["status"], rows[gone]["digits"], rows[gone]["retry"]) == (
        "scored", 2, False)  # fmt: skip
    assert rows[fixed]["error"] == f"{fixed}: still broken" and rows[fixed]["retry"]
    assert rows[bad]["retry"] is False
    digits = commits.read_digits(store, "b")
    assert digits.filter(pc.equal(digits["file"], gone))["digit"].to_pylist() == [4, 5]
    # The next plan reads the still broken one again, and nothing else.
    assert batch.plan_batch(store, "b", str(folder), 10).shards == [[fixed, replaced]]
    # Removed from the input (a broken link deleted), its row goes; the others stay. Not
    # if another run, which listed it before, has read it again since this plan was made:
    # its reading stands.
    (folder / fixed).unlink()
    plan = batch.plan_batch(store, "b", str(folder), 10)
    key = commits.commit_key("b", fixed)
    held = store.read_bytes(key)
    store.write_bytes(key, b"another run's reading", if_match=plan.gone[fixed])
    assert batch.drop_gone(store, plan) == [fixed]
    assert store.read_bytes(key) == b"another run's reading"
    store.write_bytes(key, held)
    ref = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    plan = batch.start_batch(store, str(folder), "b", ref, 10)
    assert (list(plan.gone), plan.shards) == ([fixed], [[replaced]])
    summary = batch.finalize(store, "b")
    assert (summary.files, summary.quarantined) == (4, 2)  # the bad one and the replaced one


def _put(root: str, name: str, data: bytes) -> None:
    """Write an input file into a local folder or under an S3 prefix."""
    if root.startswith("s3://"):
        bucket, key_prefix = parse_s3_uri(root)
        boto3.client("s3").put_object(Bucket=bucket, Key=f"{key_prefix}/{name}", Body=data)
    else:
        Path(root).mkdir(exist_ok=True)
        Path(root, name).write_bytes(data)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_scan_replaced_since_it_was_read_is_named_and_read_by_the_next_model(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = LocalStore(tmp_path / "store")
    names = [f"scan_{k:02d}.png" for k in range(4)]
    root = str(tmp_path / "in")
    if where == "s3":
        root = f"s3://{request.getfixturevalue('s3_bucket')}/in"
    for name in names:
        _put(root, name, CONTENT)
    first = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version=VERSION)
    resume.open_batch(store, "old", root, first)
    _score(store, "old", names)
    batch.finalize(store, "old")
    _put(root, names[1], b"a re-scan under the same name")
    # The batch that read it keeps what it read (a file is committed once), and says so.
    again = batch.plan_batch(store, "old", root, shard_size=4)
    assert (again.changed, again.shards, again.already_done) == ([names[1]], [], 4)
    # The next champion's inbox run reads it, and only it.
    second = first.model_copy(update={"sha256": "b" * 64, "version": "run2/larger_cnn@bbbb"})
    resume.open_batch(store, "new", root, second)
    inbox = batch.plan_batch(store, "new", root, 4, rescore=False, ref=second)
    assert (inbox.shards, inbox.already_done, inbox.changed) == ([[names[1]]], 3, [])
    summary = batch.finalize(store, "old", again.already_done, changed_since_read=1)
    assert summary.changed_since_read == 1


def test_a_files_table_that_cannot_be_read_tells_no_sizes_and_stops_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, folder = LocalStore(tmp_path / "store"), tmp_path / "in"
    folder.mkdir()
    names = _inputs(folder, 3)
    _score(store, "b", names[:2])
    batch.finalize(store, "b")
    store.write_bytes("scoring/b/files.parquet", b"PAR1 cut short")
    _put(str(folder), names[0], b"a re-scan under the same name")
    plan = batch.plan_batch(store, "b", str(folder), shard_size=4)
    assert (plan.shards, plan.already_done, plan.changed) == ([names[2:]], 2, [])
    assert "files.parquet cannot be read" in caplog.text


def test_a_review_crop_is_named_within_what_file_systems_allow(tmp_path: Path) -> None:
    """However much a reader reads in one line, and however long the file's name, the crop's
    name stays under 255 bytes, stays apart from other readings, and is known as a crop."""
    name = "é" * 120 + ".png"
    long, other = "7" * 190, "7" * 189 + "1"
    keys = [results.line_review_key("b", name, 3, 12, text) for text in (long, other, "12")]
    leaves = [key.rsplit("/", 1)[1] for key in keys]
    assert all(len(leaf.encode()) <= 255 for leaf in leaves) and len(set(keys)) == 3
    assert all(results._REVIEW_KEY.match(leaf)["slug"] == results.slug(name) for leaf in leaves)
    store = LocalStore(tmp_path / "store")
    store.write_bytes(keys[0], b"crop")  # a name the local store can hold
    assert store.exists(keys[0])
