"""The command line under hostile input: bad options, option combinations a profile does
not foresee, and a command killed with SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from tests.conftest import REPO, clone_store, free_port, in_the_foreground


def cli(*args: str) -> Any:
    """Run ``digitflow`` in this process; an unexpected exception fails the test."""
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["train", "--models", "baseline_mlp", "--ensemble", "baseline_mlp,simple_cnn"],
         "--ensemble"),
        (["train", "--models", ""], "--models"),
        (["train", "--models", " , "], "--models"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--epochs", "ten"], "--epochs"),
        (["train", "--lr-schedule", "linear"], "--lr-schedule"),
        (["train", "--profile", "fast"], "--profile"),
        (["train", "--mode", "cluster"], "--mode"),
        (["train", "--no-such-option"], "--no-such-option"),
        (["retrain", "--limit", "5"], "--limit"),
        (["retrain", "--strings", "3"], "--strings"),
        (["pipeline", "--pages", "0"], "--pages"),
        (["promote", "--alpha", "0"], "--alpha"),
        (["promote", "--max-error", "2"], "--max-error"),
        (["score"], "INPUT"),
    ],
)  # fmt: skip
def test_every_bad_option_is_one_line_and_runs_nothing(
    args: list[str], option: str, tmp_path: Path
) -> None:
    result = cli(*args, "--store", str(tmp_path / "store"))
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert option.lower() in lines[0].lower()
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["score", "s3://AKIAEXAMPLE:pa55word@bucket/scans"],
        ["score", "scans", "--store", "s3://AKIAEXAMPLE:pa55word@bucket/store"],
        ["train", "--store", "https://user:pa55word@host/store"],
        ["pipeline", "--scans", "s3://AKIAEXAMPLE:pa55word@bucket/scans"],
    ],
)
def test_credentials_in_an_input_or_a_store_uri_are_refused_before_any_run_unrepeated(
    args: list[str], tmp_path: Path
) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and result.stdout == "", result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the URI holds credentials" in lines[0], result.stderr
    assert "pa55word" not in result.stderr and "AKIAEXAMPLE" not in result.stderr


@pytest.mark.slow
def test_options_win_over_the_profile_and_its_ensemble_shrinks(
    mnist_store: tuple[str, str], tmp_path: Path
) -> None:
    uri = clone_store(mnist_store[0], tmp_path / "store")
    quick = ["--epochs", "1", "--clean-epochs", "0", "--limit", "100", "--store", uri, "--json"]
    result = cli("train", "--profile", "best", "--models", "challenger_dense", *quick)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    assert [c["model_name"] for c in trained["candidates"]] == ["challenger_dense"]
    assert trained["failures"] == {}
    card = json.loads(Path(uri, trained["candidates"][0]["card_key"]).read_text())
    assert card["params"]["augment"] is True and card["params"]["lr_schedule"] == "cosine"
    assert card["params"]["epochs"] == 1  # the option, not the profile's 30

    result = cli("train", "--models", "baseline_mlp", "--ensemble", "", *quick)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    assert [c["model_name"] for c in trained["candidates"]] == ["baseline_mlp"]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An S3 endpoint that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in held:
        conn.close()


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for its parent to reap it, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _answers(server: int) -> bool:
    """Whether the server process ``server`` accepts connections on its ``--port``."""
    words = _cmdline(server).split()
    port = int(words[words.index("--port") + 1])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


@pytest.mark.slow
def test_sigkill_of_score_takes_the_temporary_prefect_server_with_it(
    silent_endpoint: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": silent_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "digitflow", "score", str(tmp_path), "--store",
               "s3://bucket/hangs"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not servers or not _answers(servers[0]):
            assert proc.poll() is None, "the command ended before its server started"
            assert time.monotonic() < deadline, "no temporary server answered within 120 s"
            servers = [c for c in _children(proc.pid) if "uvicorn" in _cmdline(c)]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(servers[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(servers[0]), "the temporary server outlived the killed command"
    finally:
        proc.kill()
        proc.wait()
        for pid in servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "group", "status"),
    [
        (signal.SIGTERM, False, -signal.SIGTERM),  # `kill PID`: Prefect stops the flow
        (signal.SIGINT, True, 130),  # Ctrl+C: the whole process group, training included
    ],
    ids=["sigterm", "ctrl-c"],
)
def test_a_training_command_stopped_ends_at_once_with_its_training_and_server(
    mnist_store: tuple[str, str], tmp_path: Path, signum: int, group: bool, status: int
) -> None:
    store = clone_store(mnist_store[0], tmp_path / "store")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    # Far more training than the wait below allows: only the signal can end it in time.
    command = [sys.executable, "-m", "digitflow", "train", "--models", "baseline_mlp",
               "--epochs", "60", "--store", store]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=in_the_foreground)  # fmt: skip
    trainers: list[int] = []
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not trainers:
            assert proc.poll() is None, "the command ended before its training started"
            assert time.monotonic() < deadline, "no training process within 300 s"
            children = _children(proc.pid)
            trainers = [c for c in children if "spawn_main" in _cmdline(c)]
            servers = [c for c in children if "uvicorn" in _cmdline(c)]
            time.sleep(0.2)
        if group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=120)
        # Before, Ctrl+C stopped the temporary server too, and the flow's last states
        # waited on a minute of retries, then failed with ConnectError (exit 1).
        assert proc.returncode == status, stderr[-3000:]
        assert "ConnectError" not in stderr
        # Nothing left for multiprocessing's tracker to clean up (before: a training's
        # queue, three named semaphores, with a warning at the command's exit).
        assert "leaked semaphore" not in stderr, stderr[-3000:]
        if not group:  # Ctrl+C reaches the training process itself as well
            assert "baseline_mlp: stopped, as the command was" in stderr
        assert not any(_alive(pid) for pid in trainers), "training outlived its command"
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in servers), "the server outlived its command"
        assert not (Path(store) / "models" / "candidates").exists()  # nothing half-written
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        for pid in trainers + servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["models", "list", "--json"], 0),
        (["train", "--epochs", "0"], 2),
        (["score", "no-such-folder"], 1),  # a flow command: its temporary server stops first
    ],
)
def test_the_command_ends_with_its_own_status_and_all_its_output(
    args: list[str], status: int, tmp_path: Path
) -> None:
    """The process ends without Python's module teardown: nothing of its output or its exit
    status may be lost to that, even through a pipe."""
    (tmp_path / "store").mkdir()  # empty: a store with nothing in it yet
    env = {**os.environ, "DIGITFLOW_STORE": str(tmp_path / "store"), "COLUMNS": "100"}
    command = str(Path(sys.executable).with_name("digitflow"))
    proc = subprocess.run([command, *args], capture_output=True, text=True, env=env, timeout=120)
    in_process = CliRunner().invoke(app, args, env=env)
    assert proc.returncode == in_process.exit_code == status, proc.stderr
    assert proc.stdout == in_process.stdout
    if status == 0:
        assert proc.stdout.strip() != ""
    else:
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_store_set_empty_is_an_error_not_the_current_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGITFLOW_STORE", "")
    result = cli("models", "list")
    assert result.exit_code == 2 and "DIGITFLOW_STORE is set but empty" in (result.stderr), (
        result.output
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["models", "list"], ["review", "export", "b", "--csv", "x.csv"]])
def test_a_store_mistyped_is_named_not_listed_empty(args: list[str], tmp_path: Path) -> None:
    result = cli(*args, "--store", str(tmp_path / "typo"))
    assert result.exit_code == 1, result.output
    said = f"error: no store at {tmp_path / 'typo'} (no such folder)"
    assert said in result.stderr.strip().splitlines()[-1], result.stderr
    assert not (tmp_path / "typo").exists()
