"""Shared fixtures: an isolated Prefect home, a real S3 server over HTTP, the MNIST files."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# The browser tests drive Debian's Chromium (scripts/install-browser.sh) through Playwright;
# Playwright's own browser downloads are never used.
CHROMIUM = os.environ.get("DIGITFLOW_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "out" / "screenshots"  # for a person to look at (git-ignored)
# Line readers trained by the tests are measured, and gated, on this many generated strings
# (the recipe's ``strings``): every path of the gate, at a fifth of the default's cost.
STRINGS = 200

# Prefect reads its settings at import: isolate it before any test module imports it.
_PREFECT_HOME = tempfile.mkdtemp(prefix="digitflow-prefect-")
# Registered before Prefect registers its own exit handlers, so it runs after them: the
# temporary server has stopped writing its database when the folder goes.
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# On a loaded machine the temporary API server can take longer than Prefect's 20 s to start.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def in_the_foreground() -> None:
    """Run in a command's process before it starts (``preexec_fn``): Ctrl+C reaches it as
    it reaches a shell's foreground job. A test run started in the background by a script
    has SIGINT ignored, and each process it starts would keep it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Block until ``port`` accepts connections or ``proc`` dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


class S3Server:
    """A moto S3 server process on 127.0.0.1 that tests can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 endpoint over HTTP; boto3 finds it through AWS_ENDPOINT_URL."""
    server = S3Server()
    server.start()
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield server
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the S3 server."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind: a local directory, then a prefix on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "store")
    return f"s3://{request.getfixturevalue('s3_bucket')}/some/prefix"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The four canonical MNIST files (DIGITFLOW_MNIST_SOURCE or ../shared/data/mnist)."""
    candidates = [os.environ.get("DIGITFLOW_MNIST_SOURCE"), str(REPO.parent / "shared/data/mnist")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate).resolve()
    pytest.skip("MNIST files not found: set DIGITFLOW_MNIST_SOURCE to a directory holding them")


@pytest.fixture(scope="session")
def mnist_store(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A local store holding the real MNIST, ingested once: (store URI, dataset version)."""
    from digitflow.data.ingest import ingest
    from digitflow.storage import LocalStore

    root = tmp_path_factory.mktemp("mnist-store")
    record = ingest(LocalStore(root), str(mnist_dir))
    return str(root), record.version


@pytest.fixture(scope="session")
def champion_store(mnist_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local store whose champion is a small simple_cnn (3 epochs on 20,000 examples)."""
    from digitflow import registry
    from digitflow.storage import open_store
    from digitflow.training import TrainConfig, train_model

    uri, version = mnist_store
    store = open_store(clone_store(uri, tmp_path_factory.mktemp("scoring") / "store"))
    config = TrainConfig(model="simple_cnn", epochs=3, limit=20_000)
    train_model(store, version, config, "test-run")
    card = registry.read_card(store, "test-run", "simple_cnn")
    registry.promote(store, card, {"reason": "scoring tests"}, None)
    return store.uri


@pytest.fixture(scope="session")
def reader_store(
    champion_store: str, mnist_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The scoring champion's store with a line reader champion too (briefly trained)."""
    from digitflow import registry
    from digitflow.layout import READER
    from digitflow.recipes import TrainConfig
    from digitflow.storage import open_store
    from digitflow.training import train_model

    store = open_store(clone_store(champion_store, tmp_path_factory.mktemp("lines") / "store"))
    config = TrainConfig(model="line_reader", epochs=2, limit=6000, batch_size=32,
                         learning_rate=2e-3, lr_schedule="cosine", strings=STRINGS)  # fmt: skip
    card = train_model(store, mnist_store[1], config, "reader-run")
    registry.promote(store, card, {"reason": "scoring tests"}, None, layout=READER)
    return store.uri


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system's package, through Playwright, for one module:
    while Playwright's sync API is open, this thread runs an event loop, and Prefect's
    sync calls (``Flow.from_source``) would turn into coroutines for every later test."""
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


def clone_store(source_uri: str, target: Path) -> str:
    """A copy of a local store, so a test can change it without touching the shared one."""
    shutil.copytree(source_uri, target)
    return str(target)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Prefect stops its ephemeral server at exit and logs it to a stream pytest has closed."""
    import logging

    logging.getLogger("prefect").setLevel(logging.WARNING)


def pytest_configure(config: pytest.Config) -> None:
    """Import Keras before output capture starts: its logging set-up (absl) binds a handler
    to the stderr of whatever test first imports it, which pytest closes after that test."""
    import keras  # noqa: F401
