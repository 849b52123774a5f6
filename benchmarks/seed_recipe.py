"""The brief's seed recipe on full MNIST: test errors, and what orchestration costs.

In one run, on the same dataset version:
  bare:  a plain Keras script trains the three models one after another (default threads)
  flow:  `digitflow train` trains them in parallel through the Prefect flow, one process each
Prints each model's test error beside the published one, and the two wall times.

Usage: python benchmarks/seed_recipe.py [--epochs N] [--limit N]   (MNIST: $DIGITFLOW_MNIST_SOURCE)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PUBLISHED = {"baseline_mlp": 1.91, "simple_cnn": 1.03, "larger_cnn": 0.82}


def bare(store_uri: str, version: str, epochs: int, limit: int | None) -> None:
    """Plain Keras, no orchestration: the three models one after another."""
    import keras
    import numpy as np

    from digitflow import models
    from digitflow.fitting import load_data
    from digitflow.storage import open_store

    data = load_data(open_store(store_uri), version, limit, seed=1)
    errors = {}
    for name in PUBLISHED:
        keras.utils.set_random_seed(1)
        model = models.build(name)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        model.fit(
            data.x_train,
            keras.utils.to_categorical(data.y_train, 10),
            validation_data=(data.x_val, keras.utils.to_categorical(data.y_val, 10)),
            epochs=epochs,
            batch_size=200,
            verbose=0,
        )
        probs = model.predict(data.x_test, batch_size=2000, verbose=0)
        errors[name] = float(np.mean(probs.argmax(axis=1) != data.y_test))
    print(json.dumps(errors))


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return seconds, out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--bare", nargs=2, metavar=("STORE", "VERSION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(*args.bare, args.epochs, args.limit)
        return
    from digitflow.data.ingest import ingest
    from digitflow.storage import LocalStore

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "store")
        env["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        version = ingest(LocalStore(store), os.environ["DIGITFLOW_MNIST_SOURCE"]).version
        limit = ["--limit", str(args.limit)] if args.limit else []
        bare_s, bare_out = timed(
            [
                sys.executable,
                __file__,
                "--bare",
                store,
                version,
                "--epochs",
                str(args.epochs),
                *limit,
            ],
            env,
        )
        cli = str(Path(sys.executable).with_name("digitflow"))
        flow_s, flow_out = timed(
            [cli, "train", "--store", store, "--epochs", str(args.epochs), *limit, "--json"], env
        )
    bare_errors = json.loads(bare_out)
    summary = json.loads(flow_out)
    flow_errors = {c["model_name"]: c["test_error"] for c in summary["candidates"]}
    walls = {c["model_name"]: c["wall_s"] for c in summary["candidates"]}
    print(f"{'model':<14}{'published':>10}{'digitflow':>11}{'bare keras':>12}{'train s':>9}")
    for name, published in PUBLISHED.items():
        print(
            f"{name:<14}{published:>9.2f}%{100 * flow_errors[name]:>10.2f}%"
            f"{100 * bare_errors[name]:>11.2f}%{walls[name]:>9.1f}"
        )
    print(f"bare keras, one after another     {bare_s:7.1f} s")
    print(
        f"digitflow train, parallel (flow)  {flow_s:7.1f} s   ratio {flow_s / bare_s:.2f}x "
        "(includes Prefect's ephemeral server start)"
    )


if __name__ == "__main__":
    main()
