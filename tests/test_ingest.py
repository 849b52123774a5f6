"""Ingestion end to end in the library: real MNIST, bad inputs, every source kind."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from digitflow.data import dataset
from digitflow.data.download import has_credentials, redact, redact_urls
from digitflow.data.ingest import ingest
from digitflow.errors import SourceError, SourceUnreachable, StoreError
from digitflow.storage import LocalStore, ObjectStore, open_store
from tests.conftest import free_port
from tests.idx_files import NAMES, idx_bytes, write_gz, write_set

TRAIN_IMAGES = NAMES["train", "images"]
TRAIN_LABELS = NAMES["train", "labels"]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_real_mnist_ingests_to_the_design_layout(mnist_dir: Path, store: LocalStore) -> None:
    record = ingest(store, str(mnist_dir))
    assert record.counts == {"train": 60_000, "test": 10_000}
    assert record.checksums_verified and record.written
    assert sum(record.class_counts["test"]) == 10_000
    assert store.list() == [
        dataset.key(record.version, n) for n in ("manifest.json", "test.parquet", "train.parquet")
    ]
    test = dataset.read_split(store, record.version, "test")
    raw = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(test.images.reshape(-1), np.frombuffer(raw, np.uint8, offset=16))
    manifest = dataset.read_manifest(store, record.version)
    assert manifest["files"][TRAIN_IMAGES]["md5"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"

    mtimes = {p: p.stat().st_mtime_ns for p in store.root.rglob("*.parquet")}
    again = ingest(store, str(mnist_dir))
    assert again.version == record.version and not again.written
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*.parquet")} == mtimes


def test_version_depends_on_content_not_on_source_path(tmp_path: Path, store: LocalStore) -> None:
    a = ingest(store, str(write_set(tmp_path / "a")), accept_custom=True)
    b = ingest(store, str(write_set(tmp_path / "b")), accept_custom=True)
    c = ingest(store, str(write_set(tmp_path / "c", seed=1)), accept_custom=True)
    assert a.version == b.version != c.version
    assert not a.checksums_verified
    assert dataset.versions(store) == sorted({a.version, c.version})


def test_custom_files_need_the_flag_and_record_their_checksums(
    tmp_path: Path, store: LocalStore
) -> None:
    src = write_set(tmp_path / "src")
    with pytest.raises(SourceError, match=r"train-images-idx3-ubyte\.gz: MD5 .* --accept-custom"):
        ingest(store, str(src))
    assert store.list() == []
    record = ingest(store, str(src), accept_custom=True)
    files = dataset.read_manifest(store, record.version)["files"]
    assert files[TRAIN_IMAGES]["md5"] != "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert len(files[TRAIN_IMAGES]["sha256"]) == 64


def _replace(name: str, payload: bytes, gz: bool = True) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        if gz:
            write_gz(root / name, payload)
        else:
            (root / name).write_bytes(payload)

    return mutate


def _images(shape: tuple[int, ...]) -> bytes:
    return idx_bytes(np.zeros(shape, np.uint8))


def _corrupt_midstream(root: Path) -> None:
    path = root / TRAIN_IMAGES
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


BAD_INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "wrong magic": (
        _replace(TRAIN_IMAGES, b"\x00\x00\x0d\x03" + _images((30, 28, 28))[4:]),
        r"train-images-idx3-ubyte\.gz: magic number 0x00000d03",
    ),
    "wrong dimension count": (
        _replace(TRAIN_IMAGES, _images((30, 784))),
        r"train-images-idx3-ubyte\.gz: IDX file has 2 dimensions, expected 3",
    ),
    "truncated payload": (
        _replace(TRAIN_IMAGES, _images((30, 28, 28))[:-100]),
        r"train-images-idx3-ubyte\.gz: truncated payload",
    ),
    "trailing bytes": (
        _replace(TRAIN_IMAGES, _images((30, 28, 28)) + b"extra"),
        r"train-images-idx3-ubyte\.gz: 5 trailing bytes",
    ),
    "count mismatch": (
        _replace(TRAIN_IMAGES, _images((29, 28, 28))),
        r"train-images-idx3-ubyte\.gz holds 29 images but .*train-labels.* holds 30 labels",
    ),
    "label outside 0-9": (
        _replace(TRAIN_LABELS, idx_bytes(np.array([1] * 29 + [10], np.uint8))),
        r"train-labels-idx1-ubyte\.gz: label 10 at item 29",
    ),
    "27x27 images": (
        _replace(TRAIN_IMAGES, _images((30, 27, 27))),
        r"train-images-idx3-ubyte\.gz: images are 27x27, expected 28x28",
    ),
    "not gzip": (
        _replace(TRAIN_IMAGES, _images((30, 28, 28)), gz=False),
        r"train-images-idx3-ubyte\.gz: not a gzip file",
    ),
    "gzip corrupted mid-stream": (
        _corrupt_midstream,
        r"train-images-idx3-ubyte\.gz: (corrupted gzip stream|gzip stream ends early)",
    ),
    "missing file": (
        lambda root: (root / TRAIN_LABELS).unlink(),
        r"missing train-labels-idx1-ubyte\.gz",
    ),
    "empty directory": (
        lambda root: [p.unlink() for p in root.iterdir()],
        r"missing train-images-idx3-ubyte\.gz, train-labels",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_file_and_problem_and_writes_nothing(
    case: str, tmp_path: Path, store: LocalStore
) -> None:
    mutate, message = BAD_INPUTS[case]
    src = write_set(tmp_path / "src")
    mutate(src)
    with pytest.raises(SourceError, match=message):
        ingest(store, str(src), accept_custom=True)
    assert store.list() == []


def test_missing_directory(tmp_path: Path, store: LocalStore) -> None:
    with pytest.raises(SourceError, match=r"nowhere does not exist"):
        ingest(store, str(tmp_path / "nowhere"))


@pytest.fixture
def http_base(mnist_dir: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the MNIST directory."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mnist_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_http_source_gives_the_same_version_as_the_directory(
    http_base: str, mnist_dir: Path, store: LocalStore
) -> None:
    from_http = ingest(store, http_base)
    assert from_http.written and from_http.counts["train"] == 60_000
    assert ingest(store, str(mnist_dir)).version == from_http.version


def test_unreachable_url_is_a_clear_transient_error(store: LocalStore) -> None:
    url = f"http://127.0.0.1:{free_port()}/mnist/"
    with pytest.raises(SourceUnreachable, match=rf"{url}train-images-idx3-ubyte\.gz: unreachable"):
        ingest(store, url, timeout_s=5)
    assert store.list() == []


def test_urls_are_shown_without_their_credentials() -> None:
    assert redact("https://user:pw@host:8443/mnist/?x=1") == "https://***@host:8443/mnist/?x=1"
    assert redact("https://token@host/a") == "https://***@host/a"
    assert redact("https://host/a@b") == "https://host/a@b"
    assert has_credentials("http://u:p@h/") and not has_credentials("http://h/a@b")
    said = redact_urls("cannot reach http://user:p@ss@host:9000/b (for https://h/a@b)")
    assert said == "cannot reach http://***@host:9000/b (for https://h/a@b)"  # an @ in a password


def test_http_404_names_the_url(http_base: str, store: LocalStore) -> None:
    with pytest.raises(SourceError, match=r"/missing/train-images-idx3-ubyte\.gz: HTTP 404"):
        ingest(store, http_base + "missing/")


def _upload_dir(bucket: str, prefix: str, root: Path) -> None:
    import boto3

    client = boto3.client("s3")
    for path in root.iterdir():
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")


def test_s3_source_into_s3_store_is_idempotent(s3_bucket: str, mnist_dir: Path) -> None:
    _upload_dir(s3_bucket, "raw/mnist", mnist_dir)
    store = open_store(f"s3://{s3_bucket}/digitflow")
    first = ingest(store, f"s3://{s3_bucket}/raw/mnist")
    second = ingest(store, f"s3://{s3_bucket}/raw/mnist/")
    assert first.written and not second.written and first.version == second.version
    train = dataset.read_split(store, first.version, "train")
    assert train.images.shape == (60_000, 28, 28) and train.labels[:3].tolist() == [5, 0, 4]


def test_s3_prefix_that_does_not_exist(s3_bucket: str, store: LocalStore) -> None:
    with pytest.raises(SourceError, match=rf"s3://{s3_bucket}/nothing/here/.*no such object"):
        ingest(store, f"s3://{s3_bucket}/nothing/here")
    assert store.list() == []


def test_store_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    src = write_set(tmp_path / "src")
    with pytest.raises(StoreError, match="not writable"):
        ingest(LocalStore(blocker / "store"), str(src), accept_custom=True)


def test_interrupted_ingestion_leaves_no_version_visible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    src = write_set(tmp_path / "src")
    version = ingest(LocalStore(tmp_path / "probe"), str(src), accept_custom=True).version
    # The manifest write fails after both splits were written (a directory is in its way).
    (store.root / dataset.key(version, "manifest.json")).mkdir(parents=True)
    with pytest.raises(StoreError, match="manifest.json"):
        ingest(store, str(src), accept_custom=True)
    assert dataset.versions(store) == []
    with pytest.raises(StoreError, match="not found"):
        dataset.read_split(store, version, "train")
    # Once the obstacle is gone a rerun completes the same version.
    (store.root / dataset.key(version, "manifest.json")).rmdir()
    assert ingest(store, str(src), accept_custom=True).written
    assert dataset.versions(store) == [version]


def test_corrupted_split_is_refused_on_read(tmp_path: Path) -> None:
    store: ObjectStore = LocalStore(tmp_path / "store")
    version = ingest(store, str(write_set(tmp_path / "src")), accept_custom=True).version
    key = dataset.key(version, "train.parquet")
    store.write_bytes(key, store.read_bytes(key)[:-10] + b"0123456789")
    with pytest.raises(SourceError, match="checksum does not match the manifest"):
        dataset.read_split(store, version, "train")


def _ingested(tmp_path: Path) -> tuple[ObjectStore, str, str]:
    """A store with a small dataset ingested: the store, the source, the version."""
    store: ObjectStore = LocalStore(tmp_path / "store")
    src = str(write_set(tmp_path / "src"))
    return store, src, ingest(store, src, accept_custom=True).version


def test_a_damaged_manifest_is_named_and_a_second_ingestion_writes_the_version_anew(
    tmp_path: Path,
) -> None:
    store, src, version = _ingested(tmp_path)
    manifest = dataset.key(version, "manifest.json")
    whole = json.loads(store.read_bytes(manifest))
    without_validation = json.dumps({k: v for k, v in whole.items() if k != "validation"})
    seed_as_text = json.dumps({**whole, "validation": {"size": "5000", "seed": 0.5}})
    for damage in (store.read_bytes(manifest)[:40], b'{"created_at": "2026-12-01"}',
                   without_validation.encode(), seed_as_text.encode()):  # fmt: skip
        # Cut short; JSON without the splits, or the validation slice; a seed as text.
        store.write_bytes(manifest, damage)
        with pytest.raises(SourceError, match=rf"{version}/manifest.json: not a readable"):
            dataset.latest(store)
        with pytest.raises(SourceError, match="ingest the source .* again"):
            dataset.read_split(store, version, "train")
        assert ingest(store, src, accept_custom=True).written
        assert dataset.latest(store) == version
        assert len(dataset.read_split(store, version, "train")) == 30


def test_a_damaged_or_missing_split_is_written_again_by_a_second_ingestion(
    tmp_path: Path,
) -> None:
    store, src, version = _ingested(tmp_path)
    train, test = dataset.key(version, "train.parquet"), dataset.key(version, "test.parquet")
    good = store.read_bytes(train), store.read_bytes(test)
    assert not ingest(store, src, accept_custom=True).written  # intact: nothing to write
    store.write_bytes(train, good[0][:-10] + b"0123456789")
    assert ingest(store, src, accept_custom=True).written
    store.delete(test)
    assert ingest(store, src, accept_custom=True).written
    assert (store.read_bytes(train), store.read_bytes(test)) == good
    assert not ingest(store, src, accept_custom=True).written


def test_validation_indices_are_stratified_and_deterministic() -> None:
    labels = np.repeat(np.arange(10, dtype=np.uint8), [100 + 10 * i for i in range(10)])
    a = dataset.validation_indices(labels, 145, seed=3)
    assert len(a) == 145 and len(np.unique(a)) == 145
    np.testing.assert_array_equal(a, dataset.validation_indices(labels, 145, seed=3))
    assert not np.array_equal(a, dataset.validation_indices(labels, 145, seed=4))
    per_class = np.bincount(labels[a], minlength=10)
    expected = np.bincount(labels, minlength=10) * 145 / len(labels)
    assert np.all(np.abs(per_class - expected) < 1)


def test_copy_of_real_files_keeps_published_checksums(mnist_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(mnist_dir, copy)
    record = ingest(LocalStore(tmp_path / "s"), str(copy))
    assert record.checksums_verified


def test_published_files_in_each_others_places_are_refused_even_as_custom(
    mnist_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "swapped"
    src.mkdir()
    labels = {TRAIN_LABELS: NAMES["test", "labels"], NAMES["test", "labels"]: TRAIN_LABELS}
    for name in NAMES.values():
        shutil.copyfile(mnist_dir / labels.get(name, name), src / name)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(SourceError, match=rf"{TRAIN_LABELS}: this is the published t10k-labels"):
        ingest(store, str(src), accept_custom=True)
    assert store.list() == []
