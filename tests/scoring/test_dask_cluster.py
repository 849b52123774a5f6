"""Scoring on an existing Dask cluster (a scheduler address), with input and store on S3, as
docs/deploy.md says to run it: a scheduler and workers started on their own, the workers
knowing only the Prefect API and the S3 credentials."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from digitflow.scoring import commits
from digitflow.storage import S3Store
from flows.score import ScoreParams, score_flow
from tests.conftest import free_port, wait_for_port
from tests.scoring.conftest import copy_models

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture
def cluster(s3_server: object, tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and two single-threaded worker processes: the scheduler's address.
    The workers report to this process's Prefect API and reach S3 through the standard
    AWS variables, as a cluster's workers would."""
    from prefect import flow, get_client

    flow(name="warm-up")(lambda: None)()  # the API the workers report to is up
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_API_URL": str(get_client(sync_client=True).api_url)}
    logs = [open(tmp_path / name, "w") for name in ("scheduler.log", "workers.log")]  # noqa: SIM115
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env, stdout=logs[0], stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port(port, scheduler)
    workers = subprocess.Popen(
        [DASK, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
        env=env, stdout=logs[1], stderr=subprocess.STDOUT,
    )  # fmt: skip
    from distributed import Client

    with Client(address, timeout=60) as client:
        deadline = time.monotonic() + 120
        while len(client.scheduler_info()["workers"]) < 2:
            assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
            time.sleep(0.5)
    try:
        yield address
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
            proc.wait(timeout=30)
        for log in logs:
            log.close()


def test_shards_on_an_existing_cluster_read_s3_and_write_the_s3_store(
    cluster: str, reader_store: str, sample_scans: tuple[Path, Path], s3_bucket: str
) -> None:
    client = boto3.client("s3")
    for path in sorted(sample_scans[0].iterdir()):
        client.put_object(Bucket=s3_bucket, Key=f"in/{path.name}", Body=path.read_bytes())
    store = S3Store(s3_bucket, "store")
    copy_models(reader_store, store)
    source = f"s3://{s3_bucket}/in"
    on_dask = score_flow(
        ScoreParams(input=source, store=store.uri, shard_size=3, batch_id="dask", dask=cluster)
    )
    here = score_flow(ScoreParams(input=source, store=store.uri, shard_size=3, batch_id="here"))
    ignore = {"batch_id", "files_uri", "digits_uri", "review_uri"}
    assert on_dask.model_dump(exclude=ignore) == here.model_dump(exclude=ignore)
    assert on_dask.scored == on_dask.files == len(list(sample_scans[0].iterdir()))
    a, b = (
        sorted((r["file"], r["page"], r["line"], r["x0"], r["digit"]) for r in rows)
        for rows in (commits.read_digits(store, batch).to_pylist() for batch in ("dask", "here"))
    )
    assert a == b and len(a) == on_dask.digits > 0
    assert on_dask.files_uri.startswith(f"s3://{s3_bucket}/store/scoring/dask/")


def test_a_scheduler_address_that_nothing_answers_stops_the_run_before_any_batch_opens(
    champion_store: str, sample_scans: tuple[Path, Path], tmp_path: Path
) -> None:
    from digitflow.errors import DigitflowError
    from tests.conftest import clone_store

    store = clone_store(champion_store, tmp_path / "store")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    params = ScoreParams(input=str(sample_scans[0]), store=store, batch_id="b", dask=address)
    with pytest.raises(DigitflowError, match=f"--dask {address}: no Dask scheduler answers"):
        score_flow(params)
    for bad in ("tcp://127.0.0.1:99999", "tcp://sched:87x6", "tcp://[::1:8786", "tcp://[zz]:1"):
        with pytest.raises(DigitflowError, match=re.escape(f"--dask {bad}: not a scheduler")):
            score_flow(params.model_copy(update={"dask": bad}))
    assert not (tmp_path / "store" / "scoring" / "b").exists()
