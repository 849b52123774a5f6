"""`digitflow score` against hostile conditions: overlapping and killed runs of one batch,
links and folders that cannot be read, files outside the input, a tampered model."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest
from PIL import Image
from typer.testing import CliRunner

from digitflow import registry
from digitflow.cli import app
from digitflow.scoring import commits, readers, results
from digitflow.scoring.inputs import read_input
from digitflow.storage import OWN_FOLDERS, ObjectStore, S3Store, open_store
from tests.conftest import clone_store
from tests.hostile.conftest import (
    copies,
    finish,
    prefect_database_holds,
    start,
    summary,
    wait_for_objects,
    without_file_permission_override,
)
from tests.scoring.conftest import copy_models
from tests.scoring.files import page, png, stalling_pdf

pytestmark = pytest.mark.slow


def _rows(store: ObjectStore, batch_id: str) -> dict[str, dict]:
    """files.parquet of a batch, by file."""
    table = results.read_parquet(store, f"scoring/{batch_id}/files.parquet")
    return {row["file"]: row for row in table.to_pylist()}


def _exactly_once(store: ObjectStore, batch_id: str, names: list[str]) -> tuple[int, int]:
    """Assert that files.parquet and digits/ hold each file and each digit once; return
    (files, digits)."""
    files = results.read_parquet(store, f"scoring/{batch_id}/files.parquet")
    assert files.column("file").to_pylist() == names  # one row per file, none twice
    digits = commits.read_digits(store, batch_id)  # every object under digits/
    per_file = pc.value_counts(digits.column("file")).to_pylist()
    counted = {row["values"]: row["counts"] for row in per_file}
    for row in files.to_pylist():
        assert counted.get(row["file"], 0) == row["digits"], row["file"]
    positions = digits.select(["file", "page", "line", "position"]).to_pylist()
    assert len({tuple(p.values()) for p in positions}) == len(positions)  # no digit twice
    wanted = results.review_keys(batch_id, digits, files.to_pylist())
    assert set(store.list(f"scoring/{batch_id}/review/")) == wanted
    return len(files), len(digits)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_overlapping_runs_of_one_batch_count_each_file_and_digit_once(
    kind: str, store: ObjectStore, forms: Path, tmp_path: Path, request: pytest.FixtureRequest,
    restore_environ: None,
) -> None:  # fmt: skip
    if kind == "s3":
        target = S3Store(request.getfixturevalue("s3_bucket"), "digitflow")
        copy_models(store.uri, target)
        store = target
    folder = tmp_path / "scans"
    names = copies(forms, folder, 4)
    score = ["score", str(folder), "--batch-id", "b", "--store", store.uri, "--json"]
    first = start(*score, "--shard-size", "4")
    # Freeze the first run as soon as it has committed something: a run paused mid-batch
    # (a stalled worker, a laptop put to sleep) that carries on later. The second runs in
    # this process meanwhile.
    wait_for_objects(store, "scoring/b/digits/", first)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        done = len(store.list("scoring/b/digits/"))
        assert 0 < done < len(names), "the first run was not caught mid-batch"
        result = CliRunner().invoke(app, [*score, "--shard-size", "5"])
        assert result.exit_code == 0, result.output
    finally:
        os.kill(first.pid, signal.SIGCONT)
    code, out, err = finish(first)
    assert code == 0, err[-3000:]
    first_run, second = summary(out), summary(result.stdout)
    # Each run read files that the other committed first; neither counted them twice.
    assert first_run["by_other_runs"] > 0 and second["files"] == len(names)
    counts = _exactly_once(store, "b", names)
    assert counts == (first_run["files"], first_run["digits"])
    assert counts == (second["files"], second["digits"])


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGKILL,  # the run, its reader processes (its API server: by its lifeline)
        signal.SIGINT,  # Ctrl+C: the run and its reader processes
    ],
    ids=["killed", "ctrl-c"],
)
def test_a_run_stopped_mid_batch_then_run_again_counts_each_file_and_digit_once(
    store: ObjectStore, forms: Path, tmp_path: Path, restore_environ: None, signum: int
) -> None:
    folder = tmp_path / "scans"
    names = copies(forms, folder, 4)
    score = ["score", str(folder), "--batch-id", "b", "--store", store.uri, "--json"]
    stopped = start(*score, "--shard-size", "3")
    wait_for_objects(store, "scoring/b/digits/", stopped)
    os.killpg(stopped.pid, signum)
    status, _, err = finish(stopped)
    if signum == signal.SIGINT:
        assert status == 130, err[-3000:]
        # The reader processes leave stopping to the run: none dies, none is started
        # again, and no file is quarantined for it.
        assert "reader process died" not in err and "exited with code" not in err, err[-3000:]
    done = len(store.list("scoring/b/digits/"))
    assert 0 < done < len(names), "the run was not stopped mid-batch"
    result = CliRunner().invoke(app, score)
    assert result.exit_code == 0, result.output
    rerun = summary(result.stdout)
    assert rerun["already_done"] == done and rerun["files"] == len(names)
    assert rerun["quarantined"] == 0
    assert _exactly_once(store, "b", names) == (rerun["files"], rerun["digits"])


def test_a_commit_cut_short_stops_the_run_naming_it_and_once_removed_its_file_is_read_again(
    store: ObjectStore, forms: Path, tmp_path: Path, restore_environ: None
) -> None:
    folder = tmp_path / "scans"
    names = copies(forms, folder, 1)
    score = ["score", str(folder), "--batch-id", "c", "--store", store.uri, "--json"]
    first = CliRunner().invoke(app, score)
    assert first.exit_code == 0, first.output
    cut, *_ = store.list("scoring/c/digits/")
    store.write_bytes(cut, b"")  # as a power cut or a full disk may leave it
    stopped = CliRunner().invoke(app, score)
    assert stopped.exit_code == 1
    assert f"{store.uri_of(cut)} is not a readable commit" in stopped.output, stopped.output
    assert "remove it, and score the batch again" in stopped.output
    store.delete(cut)
    again = CliRunner().invoke(app, score)
    assert again.exit_code == 0, again.output
    rerun = summary(again.stdout)
    assert (rerun["files"], rerun["already_done"]) == (len(names), len(names) - 1)
    _exactly_once(store, "c", names)


def test_a_scan_whose_name_is_not_utf8_is_read_and_named_with_escapes_no_other_name_takes(
    store: ObjectStore, forms: Path, tmp_path: Path, restore_environ: None
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    scan = next(p for p in sorted(forms.iterdir()) if p.suffix == ".png")
    (folder / "plain.png").write_bytes(scan.read_bytes())
    # A name from an older system, in Latin-1: é is the byte E9, no UTF-8.
    latin = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    with open(latin, "wb") as f:
        f.write(scan.read_bytes())
    # And one whose UTF-8 name is that escape, as text: a blank page, another file.
    Image.new("L", (200, 100), 255).save(folder / "caf\\xe9.png")
    result = CliRunner().invoke(app, ["score", str(folder), "--batch-id", "u", "--store",
                                      store.uri, "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _rows(store, "u")
    assert sorted(rows) == ["caf\\x5cxe9.png", "caf\\xe9.png", "plain.png"]
    assert {r["status"] for r in rows.values()} == {"scored"}
    assert rows["caf\\xe9.png"]["digits"] == rows["plain.png"]["digits"] > 0
    assert rows["caf\\x5cxe9.png"]["digits"] == 0
    # Read again by the name the batch keeps (as a CSV import of corrections does).
    assert read_input(str(folder), "caf\\xe9.png") == scan.read_bytes()
    assert read_input(str(folder), "caf\\x5cxe9.png") == (folder / "caf\\xe9.png").read_bytes()


def _cpu_s(pid: int) -> tuple[int, float]:
    """A process's parent and the CPU seconds it has used (0, 0.0 once it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0.0
    # The fields after the name: state, ppid, …; utime and stime are the 12th and 13th.
    return int(stat[1]), (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _busiest_reader_cpu_s(pid: int) -> float:
    """CPU seconds spent by the busiest reader process (a child started by spawn) of a run:
    more than a reader's start costs only while it reads a file that stalls it."""
    busiest = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            spawned = b"multiprocessing.spawn" in (proc / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        parent, seconds = _cpu_s(int(proc.name))
        if spawned and parent == pid:
            busiest = max(busiest, seconds)
    return busiest


def _page_and_stall(forms: Path, folder: Path, step: float) -> Path:
    """A folder of a good page (page.png) and a PDF that stalls its reader (stall.pdf)."""
    folder.mkdir()
    scan = next(p for p in sorted(forms.iterdir()) if p.suffix == ".png")
    (folder / "page.png").write_bytes(scan.read_bytes())
    (folder / "stall.pdf").write_bytes(stalling_pdf(step))
    return folder


def test_a_file_that_stalls_its_reader_is_stopped_at_the_deadline_and_quarantined(
    store: ObjectStore, forms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _page_and_stall(forms, tmp_path / "scans", 0.005)  # about 50 s for its page
    monkeypatch.setenv("DIGITFLOW_FILE_DEADLINE_S", "3")
    code, _, err = finish(start("score", str(folder), "--batch-id", "d", "--store", store.uri,
                                  "--json"))  # fmt: skip
    assert code == 0, err[-3000:]
    rows = _rows(store, "d")
    assert rows["page.png"]["status"] == "scored"
    assert rows["stall.pdf"]["status"] == "quarantined"
    stopped = "reading it took longer than 3 s (DIGITFLOW_FILE_DEADLINE_S): stopped"
    assert stopped in rows["stall.pdf"]["error"], rows["stall.pdf"]


def test_a_second_ctrl_c_stops_a_run_held_up_by_a_stalled_file_at_once_and_loses_nothing(
    store: ObjectStore, forms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _page_and_stall(forms, tmp_path / "scans", 0.002)  # about 500 s for its page
    monkeypatch.setenv("DIGITFLOW_FILE_DEADLINE_S", "600")
    score = ["score", str(folder), "--batch-id", "s", "--store", store.uri, "--json"]
    run = start(*score, "--shard-size", "1")
    assert wait_for_objects(store, "scoring/s/digits/", run) == 1  # page.png, in its shard
    deadline = time.monotonic() + 120
    while _busiest_reader_cpu_s(run.pid) < 4 and run.poll() is None:  # on stall.pdf
        assert time.monotonic() < deadline, "no reader was seen reading stall.pdf"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)
    time.sleep(3)
    # A first Ctrl+C lets the files being read end and be saved: the stalled one holds it.
    assert run.poll() is None, "the run ended before the stalled file was read"
    os.killpg(run.pid, signal.SIGINT)
    status, _, err = finish(run, timeout_s=60)
    assert status == 130, err[-3000:]
    assert "stop again to stop at once" in err and "stopped at once" in err, err[-3000:]
    assert "stall.pdf: not read, as the run was stopped at once" in err, err[-3000:]
    assert "reader process died" not in err, err[-3000:]
    assert len(store.list("scoring/s/digits/")) == 1  # nothing committed for stall.pdf
    # The next run reads the file the stopped run left (here stopped at a short deadline).
    monkeypatch.setenv("DIGITFLOW_FILE_DEADLINE_S", "3")
    status, out, err = finish(start(*score))
    assert status == 0, err[-3000:]
    assert summary(out)["already_done"] == 1
    rows = _rows(store, "s")
    assert rows["page.png"]["status"] == "scored"
    assert "reading it took longer than 3 s" in rows["stall.pdf"]["error"], rows["stall.pdf"]


def test_a_file_that_ends_its_readers_in_two_runs_is_read_again_only_once_replaced(
    store: ObjectStore, forms: Path, tmp_path: Path, restore_environ: None
) -> None:
    folder = _page_and_stall(forms, tmp_path / "scans", 0.002)
    score = ["score", str(folder), "--batch-id", "k", "--store", store.uri, "--json"]
    stop, kills = threading.Event(), []

    def out_of_memory() -> None:  # as the kernel ends a reader that a file makes too large
        while not stop.is_set():
            for reader in mp.active_children():
                if reader.name == "digitflow-reader" and _cpu_s(reader.pid or 0)[1] > 5:
                    os.kill(reader.pid or 0, signal.SIGKILL)
                    kills.append(reader.pid)
            time.sleep(0.05)

    readers.shutdown()  # readers of this process, for the killer to find
    killer = threading.Thread(target=out_of_memory)
    killer.start()
    try:
        runs = [CliRunner().invoke(app, score) for _ in range(3)]
        assert [r.exit_code for r in runs] == [0, 0, 0], [r.output for r in runs]
        rows = _rows(store, "k")
    finally:
        stop.set()
        killer.join()
        readers.shutdown()
    # The first run quarantines it for the next to read again; the second, after two
    # readers more, for good; the third reads neither file.
    assert len(kills) == 4, kills
    done = [summary(r.stdout)["already_done"] for r in runs]
    assert done == [0, 1, 2], done
    stall = rows["stall.pdf"]
    assert (stall["status"], stall["retry"]) == ("quarantined", False), stall
    assert "It was read again after a quarantine" in stall["error"], stall
    assert rows["page.png"]["status"] == "scored"
    # Replaced (its size changes), it is read again.
    (folder / "stall.pdf").write_bytes((folder / "page.png").read_bytes())
    again = CliRunner().invoke(app, score)
    assert again.exit_code == 0, again.output
    assert summary(again.stdout)["already_done"] == 1
    assert _rows(store, "k")["stall.pdf"]["status"] == "scored"


def _hostile_folder(root: Path, secret: str) -> Path:
    """A folder with one good scan and every kind of entry that is not one."""
    folder, outside = root / "scans", root / "outside"
    folder.mkdir()
    outside.mkdir()
    good = png(page())
    (folder / "good.png").write_bytes(good)
    (folder / "notes.png").write_text(f"password: {secret}\n")
    (outside / "secret.txt").write_text(f"password: {secret}\n")
    (outside / "scan.png").write_bytes(good)
    (folder / "self.png").symlink_to("self.png")
    (folder / "dangling.png").symlink_to("nowhere.png")
    (folder / "to secret.png").symlink_to(outside / "secret.txt")
    (folder / "to outside scan.png").symlink_to(outside / "scan.png")
    (folder / "to good.png").symlink_to("good.png")
    (folder / "to folder").symlink_to(outside)
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.png").write_bytes(good)
    (folder / "to sub").symlink_to("sub")
    os.mkfifo(folder / "pipe")
    (folder / "locked").mkdir()
    (folder / "locked" / "hidden.png").write_bytes(good)
    (folder / "locked").chmod(0)
    return folder


EXPECTED = {  # file: (status, a phrase of its reason)
    "good.png": ("scored", ""),
    "to good.png": ("quarantined", "a symbolic link to good.png, which this batch reads"),
    "notes.png": ("quarantined", "not a readable image"),
    "self.png": ("quarantined", "leads back to itself"),
    "dangling.png": ("quarantined", "which does not exist"),
    "to secret.png": ("quarantined", "outside the input folder: not read"),
    "to outside scan.png": ("quarantined", "outside the input folder: not read"),
    "to folder": ("quarantined", "outside the input folder: not read"),
    "sub/inner.png": ("scored", ""),
    "to sub": ("quarantined", "a symbolic link to a folder, not followed"),
    "pipe": ("quarantined", "not a regular file"),
    "locked": ("quarantined", "a folder that cannot be read (Permission denied)"),
}


def test_links_pipes_and_unreadable_folders_each_get_a_row_and_nothing_is_echoed(
    store: ObjectStore, tmp_path: Path, restore_environ: None
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    folder = _hostile_folder(tmp_path, secret)
    try:
        args = ("score", str(folder), "--batch-id", "b", "--store", store.uri, "--json")
        code, out, err = finish(start(*args, prefix=without_file_permission_override()))
    finally:
        (folder / "locked").chmod(0o755)
    assert code == 0, err[-3000:]
    assert summary(out)["files"] == len(EXPECTED)
    ledger = _rows(store, "b")
    assert ledger.keys() == EXPECTED.keys()  # one row for each entry, whatever it is
    for name, (status, phrase) in EXPECTED.items():
        assert ledger[name]["status"] == status, (name, ledger[name]["error"])
        assert phrase in (ledger[name]["error"] or ""), (name, ledger[name]["error"])
        if status == "quarantined":
            assert f"{name}: " in err, f"{name} is not in the run's log"  # one warning each
    assert secret not in str(ledger) + out + err
    assert prefect_database_holds("dangling.png")  # the run's logs are in that database
    assert not prefect_database_holds(secret)

    # Allowed to follow links out of the folder, it reads them; a non-image stays unquoted.
    args_in = ["score", str(folder), "--batch-id", "c", "--store", store.uri,
               "--follow-outside-links", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args_in)
    assert result.exit_code == 0, result.output
    rows = _rows(store, "c")
    assert rows["to outside scan.png"]["status"] == "scored"
    assert rows["to outside scan.png"]["digits"] == rows["good.png"]["digits"] > 0
    assert "not a readable image" in rows["to secret.png"]["error"]
    assert secret not in str(rows) + result.output
    assert not prefect_database_holds(secret)

    # The link to itself mended (a scan in its place), batch b run again, following links:
    # what could not be read is read again, what was read and found no image is not.
    (folder / "self.png").unlink()
    (folder / "self.png").write_bytes(png(page()))
    result = CliRunner().invoke(app, [*args_in[:3], "b", *args_in[4:]])
    assert result.exit_code == 0, result.output
    again = _rows(store, "b")
    # The folder listable since is gone as an entry: its file is read in its place.
    assert again.keys() == EXPECTED.keys() - {"locked"} | {"locked/hidden.png"}
    assert again["locked/hidden.png"]["status"] == "scored"
    assert again["self.png"]["status"] == again["to outside scan.png"]["status"] == "scored"
    assert again["notes.png"] == ledger["notes.png"] and again["good.png"] == ledger["good.png"]
    assert again["pipe"] == ledger["pipe"] and not again["pipe"]["retry"]  # cannot pass
    assert "not a readable image" in again["to secret.png"]["error"]
    # good, sub/inner, notes; the pipe, the link to a folder and the one to good.png
    assert summary(result.output)["already_done"] == 6


def test_a_tampered_model_is_refused_once_before_any_file_is_read(
    store: ObjectStore, forms: Path, restore_environ: None
) -> None:
    champion, _ = registry.current_champion(store)
    assert champion is not None
    model = store.read_bytes(champion.model_key)
    store.write_bytes(champion.model_key, model[:-100] + bytes(100))
    result = CliRunner().invoke(app, ["score", str(forms), "--store", store.uri])
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: ") and "does not match" in message
    assert "digitflow models rollback" in message and "digitflow retrain" in message
    assert "run the same command again" not in result.output
    assert store.list("scoring/") == []  # no batch was opened, no file read


_SLOW_WRITER = """
import sys, time
from pathlib import Path
data, path = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2])
started, stop = Path(sys.argv[3]), Path(sys.argv[4])
with path.open("wb") as out:
    out.write(data[: len(data) // 2])
    out.flush()
    started.touch()
    written = len(data) // 2
    while not stop.exists() and written < len(data) - 1:  # a byte every 20 ms, as asked
        out.write(data[written : written + 1])
        out.flush()
        written += 1
        time.sleep(0.02)
    out.write(data[written:])
"""


def test_a_scan_still_being_written_is_left_for_the_next_run_which_reads_it_whole(
    store: ObjectStore, forms: Path, tmp_path: Path, restore_environ: None
) -> None:
    folder = tmp_path / "inbox"
    names = copies(forms, folder, 1)
    scan = forms / "scan_000.jpg"
    growing, started, stop = folder / "zz-arriving.jpg", tmp_path / "started", tmp_path / "stop"
    # A scanner writing into the inbox while the batch runs: a process of its own.
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(scan), str(growing), str(started), str(stop)]
    )
    try:
        while not started.exists():
            assert writer.poll() is None, "the writer stopped before it started"
            time.sleep(0.01)
        score = ["score", str(folder), "--batch-id", "b", "--store", store.uri, "--json"]
        code, out, err = finish(start(*score))
        assert code == 0, err[-3000:]
    finally:
        stop.touch()
        writer.wait(timeout=60)
    first = summary(out)
    assert (first["unsettled"], first["files"]) == (1, len(names))
    assert growing.name not in _rows(store, "b")  # not read half-written, not committed
    assert f"{growing.name}: its size changed while the batch ran" in err
    again = summary(CliRunner().invoke(app, score).stdout)
    assert (again["already_done"], again["files"], again["unsettled"]) == (
        len(names),
        len(names) + 1,
        0,
    )
    row = _rows(store, "b")[growing.name]
    assert row["status"] == "scored" and row["digits"] > 0
    assert row["sha256"] == hashlib.sha256(scan.read_bytes()).hexdigest()  # read whole


def test_a_store_in_the_input_folder_is_not_scanned_and_an_input_in_the_store_is_refused(
    champion: str, forms: Path, tmp_path: Path, restore_environ: None
) -> None:
    """``digitflow score .`` where the store is ``./.digitflow/store``: its results, review
    crops and lock files are the batch's output, never its scans."""
    folder = tmp_path / "scans"
    names = copies(forms, folder, 1)
    store = open_store(clone_store(champion, folder / ".digitflow" / "store"))
    score = ["score", str(folder), "--batch-id", "b", "--store", store.uri, "--json"]
    for run in range(2):
        result = CliRunner().invoke(app, [*score, "--review-threshold", "0.999"])
        assert result.exit_code == 0, result.output
        said = summary(result.stdout)
        assert said["files"] == len(names) and said["quarantined"] == 0, said
        assert said["already_done"] == (0 if run == 0 else len(names)), said
    assert store.list("scoring/b/review/"), "no review crops: the store held nothing to skip"
    assert said["review_crops"] == len(store.list("scoring/b/review/"))
    # What the store holds after a batch lies in the folders it is known to write.
    assert {p.name for p in (folder / ".digitflow" / "store").iterdir()} <= set(OWN_FOLDERS)
    assert _exactly_once(store, "b", names)[0] == len(names)
    before = store.list("scoring/")
    result = CliRunner().invoke(app, ["score", f"{store.uri}/scoring", "--store", store.uri])
    assert result.exit_code == 1 and "is the store" in result.output, result.output
    assert store.list("scoring/") == before  # refused before any batch was opened


def test_an_input_that_is_no_folder_opens_no_batch(
    champion: str, tmp_path: Path, restore_environ: None
) -> None:
    store = clone_store(champion, tmp_path / "store")
    (tmp_path / "one.png").write_bytes(png(page()))
    for bad in (tmp_path / "missing", tmp_path / "one.png"):
        result = CliRunner().invoke(app, ["score", str(bad), "--store", store])
        assert result.exit_code == 1 and "does not exist or is not a folder" in result.output
    assert not (tmp_path / "store" / "scoring").exists()  # before: a batch.json for each
