"""Task runners for scale-out: shards on a Dask cluster through prefect-dask.

``dask_runner("local")`` starts a LocalCluster of worker processes (one per core, or
``local:N``) for the flow run and tears it down after; ``dask_runner("tcp://host:8786")``
uses an existing cluster, whose workers need digitflow installed and ``PREFECT_API_URL``
pointing at the same Prefect server as the flow.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

from digitflow.errors import DigitflowError

if TYPE_CHECKING:
    from distributed import LocalCluster

LOCAL = re.compile(r"^local(?::(?P<workers>[1-9][0-9]*))?$")
SPEC_PATTERN = r"^(local(:[1-9][0-9]*)?|(tcp|tls|ucx)://\S+)$"


def local_cluster(n_workers: int) -> LocalCluster:
    """Worker processes on this machine that report task runs to this process's Prefect API.

    Under Prefect's ephemeral API each worker would otherwise start a server of its own
    (seconds each); CPU threads are split between workers so they do not oversubscribe.
    """
    from distributed import LocalCluster
    from prefect import get_client

    logging.getLogger("distributed").setLevel(logging.WARNING)
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    env = {
        "PREFECT_API_URL": str(get_client(sync_client=True).api_url).rstrip("/"),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        env=env,
        dashboard_address=":0",
        silence_logs=logging.WARNING,
    )


def dask_runner(spec: str) -> Any:
    """A DaskTaskRunner for ``local``, ``local:N`` or a scheduler address."""
    from prefect_dask import DaskTaskRunner

    local = LOCAL.match(spec)
    if local:
        workers = int(local["workers"] or os.cpu_count() or 1)
        # prefect-dask calls cluster_class(**cluster_kwargs), though it annotates no arguments.
        return DaskTaskRunner(
            cluster_class=local_cluster,  # type: ignore[arg-type]
            cluster_kwargs={"n_workers": workers},
        )
    if not re.match(SPEC_PATTERN, spec):
        raise ValueError(f"dask {spec!r}: expected local, local:N or tcp://host:port")
    _reachable(spec)
    return DaskTaskRunner(address=spec)


def _reachable(address: str, timeout_s: float = 10.0) -> None:
    """DigitflowError, before any batch is opened, if nothing answers at a tcp:// or
    tls:// scheduler address (Dask's client would try for 30 s, then fail each shard)."""
    try:
        parts = urllib.parse.urlsplit(address)
        host, port = parts.hostname, parts.port or 8786
        if parts.scheme not in ("tcp", "tls") or host is None:
            return
        with socket.create_connection((host, port), timeout_s):
            return
    except (ValueError, UnicodeError) as exc:  # a port out of range, a host that is no name
        raise DigitflowError(f"--dask {address}: not a scheduler address ({exc})") from None
    except OSError as exc:
        raise DigitflowError(
            f"--dask {address}: no Dask scheduler answers there ({exc.strerror or exc}): "
            "start one (dask scheduler), or check its address and port"
        ) from None
