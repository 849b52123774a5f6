"""Listing and reading a batch's input: a local folder or an S3 prefix."""

from __future__ import annotations

import os
import re
from pathlib import Path

import boto3
import pytest

from digitflow.errors import SourceError, StoreUnavailable, UnreadableNow
from digitflow.scoring import folder
from digitflow.scoring.inputs import default_batch_id, list_inputs, read_input, store_inside
from tests.conftest import free_port


def _folder(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    return root


def test_local_folder_is_listed_recursively_sorted_hidden_files_included(tmp_path: Path) -> None:
    _folder(tmp_path, ["b.png", "a dir/ünï 数字.jpg", ".DS_Store", "a dir/deeper/c.tif"])
    files = list_inputs(str(tmp_path))
    assert [f.name for f in files] == [
        ".DS_Store", "a dir/deeper/c.tif", "a dir/ünï 数字.jpg", "b.png"
    ]  # fmt: skip
    assert files[-1].size == len(b"b.png")
    assert read_input(str(tmp_path), "a dir/ünï 数字.jpg") == "a dir/ünï 数字.jpg".encode()


def test_missing_folder_is_a_clear_error_and_an_empty_one_has_no_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist or is not a folder"):
        list_inputs(str(tmp_path / "nope"))
    assert list_inputs(str(tmp_path)) == []


def test_a_file_gone_before_it_is_read_is_a_source_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=re.escape(f"{tmp_path}/gone.png: cannot be read")):
        read_input(str(tmp_path), "gone.png")


def test_entries_that_are_not_files_are_listed_and_refused_with_their_reason(
    tmp_path: Path,
) -> None:
    folder, outside = tmp_path / "in", tmp_path / "out"
    _folder(folder, ["a.png", "sub/b.png"])
    _folder(outside, ["secret.txt"])
    links = {"loop": "loop", "dangling": "nowhere", "inside": "a.png", "to sub": "sub",
             "out": str(outside / "secret.txt")}  # fmt: skip
    for name, target in links.items():
        (folder / name).symlink_to(target)
    os.mkfifo(folder / "pipe")
    names = [f.name for f in list_inputs(str(folder))]
    assert names == ["a.png", "dangling", "inside", "loop", "out", "pipe", "sub/b.png", "to sub"]
    reasons = {
        "inside": "a symbolic link to a.png, which this batch reads under that name: not "
        "read twice",
        "loop": "a symbolic link that leads back to itself",
        "dangling": "a symbolic link to nowhere, which does not exist",
        "to sub": "a symbolic link to a folder, not followed",
        "out": f"a symbolic link to {outside}/secret.txt, outside the input folder: not read",
        "pipe": "not a regular file",
    }
    may_pass = {"loop", "dangling", "out"}  # mended, or allowed, the next run reads them
    for name, reason in reasons.items():
        with pytest.raises(SourceError, match=re.escape(f"{folder}/{name}: {reason}")) as err:
            read_input(str(folder), name)
        assert isinstance(err.value, UnreadableNow) is (name in may_pass), name
    assert read_input(str(folder), "out", follow_outside_links=True) == b"secret.txt"


def test_a_link_to_a_file_the_listing_cannot_reach_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _folder(tmp_path / "in", ["locked/b.png"])
    (root / "a.png").symlink_to("locked/b.png")
    scandir = os.scandir

    def refusing(path: object) -> object:  # as for a process without root's override
        if Path(str(path)).name == "locked":
            raise PermissionError(13, "Permission denied")
        return scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", refusing)
    assert [f.name for f in list_inputs(str(root))] == ["a.png", "locked"]
    assert read_input(str(root), "a.png") == b"locked/b.png"  # its only way into the batch


def test_a_file_too_large_to_be_a_scan_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "scans" / "huge.tif"
    huge.parent.mkdir()
    with huge.open("wb") as f:
        f.truncate(folder.MAX_FILE_BYTES + 1)  # sparse: nothing is written to disk
    with pytest.raises(SourceError, match="huge.tif: 1.0 GiB, over the 1 GiB a scanned file"):
        read_input(str(huge.parent), "huge.tif")


def test_a_folder_swapped_for_a_link_out_after_its_check_is_not_read_through(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "scans", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.png").write_bytes(b"scan")
    outside.mkdir()
    (outside / "x.png").write_bytes(b"secret")
    where = f"{root}/sub/x.png"
    real = folder._resolve(root, root / "sub" / "x.png", where, follow_outside_links=False)
    # Between the check and the open, someone who may write to the folder swaps it.
    (root / "sub").rename(tmp_path / "was sub")
    (root / "sub").symlink_to(outside)
    with pytest.raises(SourceError, match="led outside the input folder when it was opened"):
        folder._read_regular(real, where, root)
    assert folder._read_regular(real, where, None) == b"secret"  # as --follow-outside-links


def test_default_batch_id_names_the_input_and_changes_with_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "Scans 2026"
    folder.mkdir()
    batch = default_batch_id(str(folder), "run/simple_cnn@abc")
    assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{10}", batch) and "scans-2026" in batch
    monkeypatch.chdir(tmp_path)
    assert default_batch_id("Scans 2026/", "run/simple_cnn@abc") == batch
    assert default_batch_id(str(folder), "run/larger_cnn@def") != batch
    assert default_batch_id("s3://b/scans/", "m") == default_batch_id("s3://b/scans", "m")


def _s3(bucket: str, objects: dict[str, bytes], **extra: str) -> None:
    client = boto3.client("s3")
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data, **extra)


@pytest.mark.parametrize(
    ("root", "store", "inside"),
    [
        ("/srv/scans", "/srv/scans/.digitflow/store", ".digitflow/store"),  # score . by default
        ("/srv/d/inbox", "/srv/d", None),  # an inbox kept beside the store's own folders
        ("s3://acme/inbox", "s3://acme", None),
        ("s3://b/in", "s3://b/input", None),  # a prefix of the name is no folder
        ("s3://b/input", "s3://b/in", None),
        ("/srv/d", "/srv/d", "refused"),
        ("/srv/d/scoring/batch-1", "/srv/d", "refused"),
        ("s3://b/st/models", "s3://b/st", "refused"),
    ],
)
def test_a_store_inside_the_input_is_left_out_and_an_input_in_its_folders_refused(
    root: str, store: str, inside: str | None
) -> None:
    if inside == "refused":
        with pytest.raises(SourceError, match="is the store .*, or lies in its own folders"):
            store_inside(root, store)
    else:
        assert store_inside(root, store) == inside


def test_s3_prefix_is_listed_without_folder_markers(s3_bucket: str) -> None:
    _s3(s3_bucket, {"in/a.png": b"a", "in/sub/": b"", "in/sub/b.jpg": b"b", "other/c.png": b"c"})
    names = [f.name for f in list_inputs(f"s3://{s3_bucket}/in")]
    assert names == ["a.png", "sub/b.jpg"]
    assert read_input(f"s3://{s3_bucket}/in/", "sub/b.jpg") == b"b"


def test_s3_keys_that_are_no_paths_are_listed_and_refused_once_for_good(s3_bucket: str) -> None:
    """Keys S3 allows and a path join may make (``a//b.png``, ``./c.png``, a non-empty
    ``d.png/``): each is listed (one row each), and refused for a reason that does not pass.
    Before, ``d.png/`` was dropped with the folder markers, and the others were read again
    by every run, failing each time."""
    odd = {"in/a//b.png": b"b", "in/./c.png": b"c", "in/d.png/": b"d", "in/../e.png": b"e"}
    _s3(s3_bucket, {"in/ok.png": b"ok", "in/sub/": b"", **odd})
    names = [f.name for f in list_inputs(f"s3://{s3_bucket}/in")]
    assert names == sorted(["ok.png", *(key.removeprefix("in/") for key in odd)])
    for name in (n for n in names if n != "ok.png"):
        with pytest.raises(SourceError, match="an empty, '.' or '..' part") as refused:
            read_input(f"s3://{s3_bucket}/in", name)
        assert not isinstance(refused.value, UnreadableNow), name  # not read again next run
    assert read_input(f"s3://{s3_bucket}/in", "ok.png") == b"ok"


def test_s3_object_deleted_after_listing_is_a_source_error(s3_bucket: str) -> None:
    _s3(s3_bucket, {"in/a.png": b"a"})
    [listed] = list_inputs(f"s3://{s3_bucket}/in")
    boto3.client("s3").delete_object(Bucket=s3_bucket, Key="in/a.png")
    with pytest.raises(SourceError, match="a.png: listed but gone when read"):
        read_input(f"s3://{s3_bucket}/in", listed.name)


def test_an_s3_object_too_large_to_be_a_scan_is_refused_unread(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3(s3_bucket, {"in/huge.tif": b"x" * 2000, "in/small.png": b"y" * 1000})
    monkeypatch.setattr(folder, "MAX_FILE_BYTES", 1000)  # not a GiB into the test's S3
    with pytest.raises(SourceError, match="huge.tif: 0.0 GiB, over the 0 GiB a scanned file"):
        read_input(f"s3://{s3_bucket}/in", "huge.tif")
    assert read_input(f"s3://{s3_bucket}/in", "small.png") == b"y" * 1000


def test_s3_object_archived_to_glacier_cannot_be_read(s3_bucket: str) -> None:
    _s3(s3_bucket, {"in/cold.png": b"x"}, StorageClass="GLACIER")
    assert [f.name for f in list_inputs(f"s3://{s3_bucket}/in")] == ["cold.png"]
    with pytest.raises(SourceError, match="InvalidObjectState.*restore it from the archive"):
        read_input(f"s3://{s3_bucket}/in", "cold.png")


def test_unreachable_s3_endpoint_is_transient_not_a_bad_file(
    s3_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreUnavailable):
        read_input("s3://bucket/in", "a.png")
