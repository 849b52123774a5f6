"""Reader processes: the same digits as in-thread reading, and nothing lost when one dies."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np
import pytest

from digitflow.scoring import interrupt, readers
from digitflow.scoring.extract import FileDigits
from tests.scoring.files import bad_and_good, stalling_pdf


def _write_folder(folder: Path, scans: Path) -> list[str]:
    """The bad-and-good cases plus the generated form pages, as files in one folder."""
    for name, (data, _, _) in bad_and_good().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for path in sorted(scans.iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def folder(sample_scans: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readers")
    _write_folder(root, sample_scans[0])
    return root


@pytest.fixture
def two_readers() -> Iterator[int]:
    """Two reader processes, started afresh for the test and stopped after it."""
    readers.shutdown()
    yield 2
    readers.shutdown()


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _in_thread(folder: Path) -> list[FileDigits]:
    return readers.read_files(str(folder), _names(folder), 1)


def _assert_same(got: list[FileDigits], want: list[FileDigits]) -> None:
    assert [f.name for f in got] == [f.name for f in want]
    for a, b in zip(got, want, strict=True):
        assert (a.status, a.pages, a.error, a.page_errors) == (
            b.status,
            b.pages,
            b.error,
            b.page_errors,
        )
        assert a.boxes == b.boxes
        np.testing.assert_array_equal(a.digits, b.digits)


def _readers() -> list[BaseProcess]:
    return [p for p in mp.active_children() if p.is_alive()]


def test_reader_processes_read_what_one_thread_reads(folder: Path, two_readers: int) -> None:
    want = _in_thread(folder)
    got = readers.read_files(str(folder), _names(folder), configured=two_readers)
    assert len(_readers()) == 2  # the work really went to two reader processes
    _assert_same(got, want)
    assert {f.status for f in got} == {"scored", "partial", "quarantined"}


def test_shards_in_threads_hold_no_more_bytes_of_files_than_the_room_and_read_them_all(
    folder: Path, two_readers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = _in_thread(folder)
    names = _names(folder)
    sizes = {name: (folder / name).stat().st_size for name in names}
    largest = max(sizes.values())  # a file larger than the room is held alone
    room = readers.Room(sum(sizes.values()) // 8)
    monkeypatch.setattr(readers, "ROOM", room)
    got: list[list[FileDigits]] = [[], []]

    def shard(k: int) -> None:  # as two shards of one folder at once, the sizes listed or not
        got[k] = readers.read_files(str(folder), names, configured=two_readers,
                                    listed=sizes if k else None)  # fmt: skip

    threads = [threading.Thread(target=shard, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert 0 < room.most <= max(room.limit, largest) and room.used == 0
    _assert_same(got[0], want)
    _assert_same(got[1], want)


def test_a_reader_starts_deaf_to_ctrl_c_and_the_scoring_process_does_not(
    folder: Path, two_readers: int
) -> None:
    """A Ctrl+C while a reader imports must not end it with a traceback: it starts with
    SIGINT blocked (the kernel's record of it, in /proc), the process that starts it not."""
    readers.read_files(str(folder), _names(folder)[:4], configured=two_readers)

    def blocked(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status").read_text()
        mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:"))
                   .split()[1], 16)  # fmt: skip
        return bool(mask & (1 << (signal.SIGINT - 1)))

    started = _readers()
    assert started and all(blocked(p.pid) for p in started if p.pid is not None)
    assert not blocked(os.getpid())
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_file_listed_empty_and_read_with_bytes_is_left_for_the_next_run(
    folder: Path, two_readers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan listed at 0 bytes (just created) and written before it is read. And the
    readers start under an empty DIGITFLOW_STORE, which the command itself refuses."""
    monkeypatch.setenv("DIGITFLOW_STORE", "")
    name = next(n for n in _names(folder) if (folder / n).stat().st_size > 0)
    [got] = readers.read_files(str(folder), [name], configured=two_readers, listed={name: 0})
    assert got.unsettled and got.pages == 0 and got.error is None


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS uses one thread on one core anyway")
def test_a_reader_process_runs_blas_on_one_thread() -> None:
    # The reader's own entry point, in a fresh interpreter: started, told to stop, then
    # asked how many threads numpy's BLAS may use. Without the limit, one a core.
    script = (
        "from multiprocessing import Pipe\n"
        "from threadpoolctl import threadpool_info\n"
        "from digitflow.scoring.process import _serve\n"
        "parent, child = Pipe()\n"
        "parent.send(None)\n"
        "_serve(child)\n"
        "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[1]"


def test_a_file_alone_starts_one_reader_and_files_at_once_start_the_others(
    folder: Path, two_readers: int
) -> None:
    names = _names(folder)
    readers.read_files(str(folder), names[:1], configured=two_readers)
    first = _readers()
    assert len(first) == 1  # one file: one process started, not one a core
    readers.read_files(str(folder), names[:1], configured=two_readers)
    assert _readers() == first  # kept for the next batch
    readers.read_files(str(folder), names[:4], configured=two_readers)
    assert len(_readers()) == 2 and first[0] in _readers()


def _cpu_ticks(pid: int) -> int:
    """User and system CPU time a process has used, in clock ticks (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _until_busy(pid: int, since: int, deadline_s: float = 120.0) -> None:
    """Return once the process has used CPU since ``since`` ticks: it is reading a file."""
    end = time.monotonic() + deadline_s
    while _cpu_ticks(pid) <= since:
        if time.monotonic() > end:
            raise AssertionError(f"reader {pid} never started reading")
        time.sleep(0.005)


def test_a_reader_killed_mid_batch_loses_nothing(
    folder: Path, two_readers: int, caplog: pytest.LogCaptureFixture
) -> None:
    want = _in_thread(folder)
    readers.read_files(str(folder), _names(folder)[:2], configured=two_readers)  # start the readers
    victim, survivor = _readers()
    assert victim.pid is not None
    idle = _cpu_ticks(victim.pid)
    names = _names(folder) * 6
    result: list[list[FileDigits]] = []
    worker = threading.Thread(
        target=lambda: result.append(readers.read_files(str(folder), names, configured=two_readers))
    )
    worker.start()
    # The victim uses CPU only once the batch hands it a file: kill it in the middle of it.
    _until_busy(victim.pid, idle)
    os.kill(victim.pid, signal.SIGKILL)
    assert worker.is_alive()  # the kill landed while the batch was being read
    worker.join(timeout=300)
    _assert_same(result[0], want * 6)
    assert "a reader process died reading it" in caplog.text
    # Only the dead reader was replaced: the next batch runs on the survivor and a new one.
    readers.read_files(str(folder), _names(folder)[:2], configured=two_readers)
    now = {p.pid for p in _readers()}
    assert len(now) == 2 and survivor.pid in now and victim.pid not in now


def test_shutdown_stops_the_readers_and_the_next_batch_starts_new_ones(
    folder: Path, two_readers: int
) -> None:
    readers.read_files(str(folder), _names(folder)[:2], configured=two_readers)
    before = _readers()
    assert len(before) == 2
    readers.shutdown()
    assert not any(p.is_alive() for p in before)
    readers.read_files(str(folder), _names(folder)[:2], configured=two_readers)
    assert {p.pid for p in _readers()}.isdisjoint(p.pid for p in before)


def test_files_whose_reader_dies_every_time_are_quarantined_with_the_reason(
    folder: Path, two_readers: int
) -> None:
    want = {f.name: f for f in _in_thread(folder)}
    names = _names(folder)
    stop = threading.Event()
    kills = 0

    def kill_every_reader() -> None:  # what a decoder that crashes on every file looks like
        nonlocal kills
        while not stop.is_set():
            for process in _readers():
                os.kill(process.pid or 0, signal.SIGKILL)
                kills += 1
            time.sleep(0.05)

    killer = threading.Thread(target=kill_every_reader)
    killer.start()
    try:
        got = readers.read_files(str(folder), names, configured=two_readers)
    finally:
        stop.set()
        killer.join()
    assert kills > 0
    assert [f.name for f in got] == names  # every file accounted for, in order
    assert any(f.error and "reader process died each time" in f.error for f in got)
    for f in got:
        if f.error and "reader process died each time" in f.error:
            assert f.status == "quarantined" and f.name in f.error
            assert f.retry  # it may pass: the batch's next run reads it again
        else:  # read before its reader was killed, or on a retry that survived
            _assert_same([f], [want[f.name]])


def test_readers_that_cannot_start_fail_the_run_with_the_reason_and_blame_no_file(
    folder: Path, tmp_path: Path
) -> None:
    # A script without the `if __name__ == "__main__":` guard: each spawned reader runs
    # the script again and stops with an error before it can read a file.
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from digitflow.scoring import readers\n"
        f"print(readers.read_files({str(folder)!r}, {_names(folder)[:3]!r}, 2))\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "ReaderStartError" in run.stderr and '`if __name__ == "__main__":` guard' in run.stderr
    assert "died each time" not in run.stderr + run.stdout  # no file was blamed


def test_a_second_stop_leaves_the_files_being_read_unread_and_the_next_batch_gets_new_readers(
    folder: Path, two_readers: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "stall.pdf").write_bytes(stalling_pdf(0.002))  # about 500 s for its page
    readers.read_files(str(folder), _names(folder)[:1], configured=two_readers)  # one reader
    (reader,) = _readers()
    assert reader.pid is not None
    idle = _cpu_ticks(reader.pid)
    outcome: list[BaseException | list[FileDigits]] = []

    def read_stall() -> None:
        try:
            outcome.append(readers.read_files(str(tmp_path), ["stall.pdf"], configured=2))
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read_stall)
    worker.start()
    _until_busy(reader.pid, idle)
    # Ctrl+C as a command in the foreground gets it (a test run from a script in the
    # background has it ignored, and then no second one could come).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # A first stop (Ctrl+C in the run's thread) lets the file go on being read...
        with pytest.raises(KeyboardInterrupt), interrupt.stopped_on_interrupt():
            raise KeyboardInterrupt
        time.sleep(1)
        assert worker.is_alive() and reader.is_alive()
        # ...the second, a signal like Ctrl+C, stops its reader and leaves it unread.
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        os.kill(os.getpid(), signal.SIGINT)
        worker.join(timeout=30)
        halted_to = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, outer)
    assert not worker.is_alive() and not reader.is_alive()
    assert halted_to is signal.default_int_handler  # Ctrl+C is itself again
    (stopped,) = outcome
    assert isinstance(stopped, interrupt.ReadingStopped), stopped
    assert "stall.pdf: not read, as the run was stopped at once" in str(stopped)
    # The next run reads on a new reader, and no death is blamed on any file.
    with interrupt.stopped_on_interrupt():
        got = readers.read_files(str(folder), _names(folder)[:2], configured=two_readers)
    _assert_same(got, _in_thread(folder)[:2])
    assert reader.pid not in {p.pid for p in _readers()}
    assert "died" not in caplog.text
