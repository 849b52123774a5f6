"""Scoring speed and accuracy on one generated folder, against naive loops and the floor.

In one run, on the same folder of generated scans (--pages form pages as JPEG, PNG, PDF
and TIFF, plus four single digits) and the same champion:
  cli          `digitflow score` end to end (a subprocess: Python, Prefect's temporary
               server start, ONNX Runtime); again against a running `prefect server`
               (`make up`); and on a folder of one page, the best of three, both ways,
               beside Prefect's temporary server started alone
  cli --dask   the same with --dask local (one worker process per core), on the copies too
  flow         score_flow in this process, timed once Prefect's ephemeral server is up and
               the model is loaded; on the copies again with DIGITFLOW_READERS=1 (no reader
               processes)
  naive page   open each image, resize the whole page to 28×28, model.predict one at a time
  naive digit  find and normalise digits as digitflow does, then model.predict per digit
               (on the first --naive-files files: its rate does not change with the count)
  floor        decoding the pages alone (PIL, pdfium for PDF) to greyscale, one thread
               (the best of three runs)
Each run of the CLI and the flow costs the same fixed time whatever the folder holds
(process and server start, readers and model loading, the flow run's own bookkeeping):
both are timed on --copies copies of the folder too, and their steady rate (what a large
batch sees) is the extra copies' pages over the time they added. One copy more is not
enough: every Prefect flow run ends by waiting for its heartbeat thread, which sleeps in
whole seconds, so a run's time is rounded up to a whole second past its start.
Prints pages/s, digits/s, ratios, and per-digit and exact-line accuracy against truth.csv,
and where a page's CPU goes in the flow's steady run: the reader processes (decoding and
finding lines) and the scoring process (reading them, writing results, Prefect).
Then the champions on ONNX Runtime (as scoring runs them) against Keras: a fresh process's
start-up, digits/s and lines/s, and whether they read the same.

Usage: python benchmarks/score.py [--pages 120] [--naive-files 40] [--copies 9]
           [--store STORE] [--model NAME] [--epochs N] [--reader-epochs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from champion import REPO, champion_store, mnist_dir, with_reader
from PIL import Image, ImageSequence

from digitflow import api_server
from digitflow.scoring.truth import Accuracy, compare, read_lines, read_truth

Lines = dict[tuple[str, int], list[str]]


def generate(root: Path, pages: int, seed: int) -> tuple[Path, Path]:
    """A folder of generated scans and its truth.csv (kept outside the folder)."""
    spec = importlib.util.spec_from_file_location("make_scans", REPO / "scripts/make_scans.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_scans"] = module
    spec.loader.exec_module(module)
    folder = module.make_sample_folder(mnist_dir(), root / "scans", pages=pages, seed=seed)
    shutil.move(folder / "truth.csv", root / "truth.csv")
    return folder, root / "truth.csv"


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A `prefect server` on 127.0.0.1, as `make up` runs it: its API URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    prefect = str(Path(sys.executable).with_name("prefect"))
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url}
    args = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("prefect server did not start")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_cli(
    folder: Path, store: str, batch_id: str, *extra: str, api_url: str | None = None
) -> tuple[float, dict]:
    """`digitflow score` in a fresh process: wall seconds and its JSON summary."""
    cli = str(Path(sys.executable).with_name("digitflow"))
    args = [cli, "score", str(folder), "--store", store, "--batch-id", batch_id, "--json", *extra]
    env = {**os.environ, "PREFECT_API_URL": api_url} if api_url else None
    start = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return seconds, json.loads(out.stdout.strip().splitlines()[-1])


def server_alone() -> float:
    """Seconds from starting Prefect's temporary server as a command starts it to its first
    answer, with nothing else running: the part of a one-page `digitflow score` on the
    temporary server that its own work cannot overlap."""
    start = time.perf_counter()
    server = api_server.TemporaryServer()
    try:
        server.wait_ready()
        return time.perf_counter() - start
    finally:
        server.stop()


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user and system) so far of this process and of its live children (the
    reader processes)."""
    import psutil

    me = psutil.Process()
    children = 0.0
    for child in me.children(recursive=True):
        try:
            children += sum(child.cpu_times()[:2])
        except psutil.Error:  # gone meanwhile
            continue
    return sum(me.cpu_times()[:2]), children


def run_flow(
    folder: Path, store: str, batch_id: str, readers: int | None = None
) -> tuple[float, tuple[float, float]]:
    """score_flow in this process, after a trivial flow has started the ephemeral server
    and loaded the model: wall seconds, and the CPU seconds the run took in this process
    and in the reader processes. ``readers``: DIGITFLOW_READERS for this run."""
    from prefect import flow

    from digitflow.scoring import batch
    from digitflow.scoring.infer import scorer_for
    from digitflow.storage import open_store
    from flows.score import ScoreParams, score_flow

    flow(name="warm-up")(lambda: None)()
    scorer_for(batch.resolve_model(open_store(store)))
    os.environ.pop("DIGITFLOW_READERS", None)
    if readers:
        os.environ["DIGITFLOW_READERS"] = str(readers)
    else:  # a batch once through, so the reader processes are up
        score_flow(ScoreParams(input=str(folder), store=store, batch_id=f"{batch_id}-warm-up"))
    before = cpu_seconds()
    start = time.perf_counter()
    score_flow(ScoreParams(input=str(folder), store=store, batch_id=batch_id))
    seconds = time.perf_counter() - start
    after = cpu_seconds()
    os.environ.pop("DIGITFLOW_READERS", None)
    return seconds, (after[0] - before[0], after[1] - before[1])


def ledger_lines(store: str, batch_id: str) -> Lines:
    """What a scoring batch read, per page and line."""
    from digitflow.scoring import commits
    from digitflow.storage import open_store

    return read_lines(commits.read_ledger(open_store(store), batch_id).to_pylist())


def _predict_one(model: object, digit: np.ndarray) -> int:
    x = (digit.astype(np.float32) / 255.0)[np.newaxis, ..., np.newaxis]
    return int(np.argmax(model.predict(x, verbose=0)))  # type: ignore[attr-defined]


def naive_page(files: list[Path], model: object) -> tuple[Lines, int]:
    """Each page resized whole to 28×28 (inverted: MNIST ink is bright), one predict each."""
    lines: Lines = {}
    for path in files:
        try:
            image = Image.open(path)
        except OSError:
            continue  # PIL cannot open PDFs: the naive loop loses them
        for page, frame in enumerate(ImageSequence.Iterator(image)):
            small = frame.convert("L").resize((28, 28), Image.Resampling.BILINEAR)
            lines[path.name, page] = [str(_predict_one(model, 255 - np.asarray(small)))]
    return lines, len(lines)


def naive_digit(files: list[Path], model: object) -> tuple[Lines, int]:
    """digitflow's own digit finding and normalisation, then one predict per digit."""
    from digitflow.imaging import load_pages, page_to_digits

    lines: Lines = {}
    digits = 0
    for path in files:
        for page in load_pages(path.read_bytes(), path.name):
            assert page.pixels is not None
            boxes, crops = page_to_digits(page.pixels)
            read: dict[int, str] = {}
            for box, crop in zip(boxes, crops, strict=True):
                read[box.line] = read.get(box.line, "") + str(_predict_one(model, crop))
            lines[path.name, page.index] = [read[k] for k in sorted(read)]
            digits += len(boxes)
    return lines, digits


def floor(files: list[Path]) -> int:
    """Decode every page to greyscale and nothing else; returns the pages decoded."""
    from digitflow.imaging import load_pages

    return sum(1 for path in files for _ in load_pages(path.read_bytes(), path.name))


_START = """
import sys, time
start = time.perf_counter()
from digitflow.scoring.infer import resolve_model, scorer_for
from digitflow.storage import open_store
for ref in resolve_model(open_store(sys.argv[1]), inference=sys.argv[2]).models():
    scorer_for(ref)
print(time.perf_counter() - start, "tensorflow" in sys.modules)
"""


def start_up(store: str, inference: str) -> tuple[float, bool]:
    """Seconds a fresh process takes to import the scorer and load the champions on an
    engine (the best of three), and whether it imported TensorFlow."""
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _START, store, inference], check=True,
                             capture_output=True, text=True)  # fmt: skip
        seconds, tensorflow = out.stdout.split()
        runs.append((float(seconds), tensorflow == "True"))
    return min(runs)


def engines(store: str) -> None:
    """The champions on ONNX Runtime and on Keras: start-up, speed, and agreement."""
    from digitflow.reader import synth
    from digitflow.reader.infer import read_with
    from digitflow.reader.strings import fixed_set
    from digitflow.samples import load_mnist
    from digitflow.scoring.infer import resolve_model, scorer_for
    from digitflow.storage import open_store

    mnist = load_mnist(mnist_dir())
    digits = mnist.images[-4096:]
    lines = [f.pixels for f in fixed_set(synth.Digits(mnist.images, mnist.labels), 512, 9).fields]
    print(f"\n{'engine':<8}{'start (s)':>10}{'TensorFlow':>12}{'digits/s':>10}{'lines/s':>9}")
    out: dict[str, tuple] = {}
    for inference in ("auto", "keras"):
        reader = resolve_model(open_store(store), choice="line", inference=inference)
        assert reader.lone is not None, "the store needs a classifier champion too"
        classify, read = scorer_for(reader.lone), scorer_for(reader)
        classify.probabilities(digits[:256]), read.run(np.zeros((8, 32, 64, 1), np.float32))
        digit_s, probs = min(timed(lambda c=classify: c.probabilities(digits)) for _ in range(3))
        line_s, texts = min(
            timed(lambda r=read: [x.text for x in read_with(r.run, lines)]) for _ in range(3)
        )
        seconds, tensorflow = start_up(store, inference)
        print(f"{reader.engine:<8}{seconds:>10.2f}{'yes' if tensorflow else 'no':>12}"
              f"{len(digits) / digit_s:>10.0f}{len(lines) / line_s:>9.0f}")  # fmt: skip
        out[reader.engine] = (probs, texts)
    (p_onnx, t_onnx), (p_keras, t_keras) = out["onnx"], out["keras"]
    same = np.mean(np.argmax(p_onnx, 1) == np.argmax(p_keras, 1))
    agree = np.mean([a == b for a, b in zip(t_onnx, t_keras, strict=True)])
    print(f"ONNX against Keras: the same digit for {100 * same:.2f} % of {len(digits)} digits "
          f"(largest probability difference {np.abs(p_onnx - p_keras).max():.1e}), the same "
          f"string for {100 * agree:.2f} % of "
          f"{len(lines)} lines")  # fmt: skip


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def row(name: str, seconds: float, pages: int, digits: int, acc: Accuracy | None) -> None:
    quality = (f"{100 * acc.digit_accuracy:10.1f}%{100 * acc.line_accuracy:12.1f}%"
               f"{acc.miscounted_pages:>6} of {acc.pages}" if acc else "")  # fmt: skip
    print(f"{name:<28}{seconds:8.1f}{pages / seconds:9.2f}{digits / seconds:10.1f}{quality}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--naive-files", type=int, default=40)
    parser.add_argument("--copies", type=int, default=9, help="copies for the steady rate (>= 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", help="a store with a champion [default: train one now]")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--reader-epochs",
        type=int,
        default=3,
        help="epochs of the line reader trained when the store has none",
    )
    args = parser.parse_args()
    os.environ.update(TF_CPP_MIN_LOG_LEVEL="2", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        store = champion_store(args.store, Path(tmp), args.model, args.epochs)
        with_reader(store, args.reader_epochs)
        folder, truth_csv = generate(Path(tmp), args.pages, args.seed)
        report(folder, read_truth(truth_csv), store, args.naive_files, max(2, args.copies))
        engines(store)


def report(folder: Path, truth: Lines, store: str, naive_files: int, copies: int) -> None:
    """Run every variant on ``folder`` and print the table."""
    from digitflow.registry import current_champion, load_model
    from digitflow.storage import open_store

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    # The folder `copies` times over: the time the extra copies add is the steady cost of
    # their pages.
    empty, many = folder.parent / "empty", folder.parent / "many"
    empty.mkdir()
    for copy in range(copies):
        shutil.copytree(folder, many / f"copy{copy}")
    one = folder.parent / "one"  # a folder of one page: what users score most often
    one.mkdir()
    shutil.copy(next(p for p in files if p.name.startswith("scan_")), one)
    # Batches of this run's own: a store used before keeps its batches, each bound to
    # the folder it scored.
    run = time.strftime("bench-%Y%m%dT%H%M%S")
    run_cli(empty, store, f"{run}-cli-first")  # creates Prefect's database: not timed
    cli_s, summary = run_cli(folder, store, f"{run}-cli")
    cli_many, _ = run_cli(many, store, f"{run}-cli-many")
    one_s = min(run_cli(one, store, f"{run}-one-{k}")[0] for k in range(3))
    alone_s = min(server_alone() for _ in range(3))
    with tempfile.TemporaryDirectory() as home, prefect_server(Path(home)) as url:
        served_s, _ = run_cli(folder, store, f"{run}-served", api_url=url)
        served_many, _ = run_cli(many, store, f"{run}-served-many", api_url=url)
        one_served_s = min(
            run_cli(one, store, f"{run}-one-served-{k}", api_url=url)[0] for k in range(3)
        )
    dask_s, _ = run_cli(folder, store, f"{run}-dask", "--dask", "local")
    dask_many, _ = run_cli(many, store, f"{run}-dask-many", "--dask", "local")
    flow_s, _ = run_flow(folder, store, f"{run}-flow")
    flow_many, (own_cpu, readers_cpu) = run_flow(many, store, f"{run}-flow-many")
    thread_many, _ = run_flow(many, store, f"{run}-thread-many", readers=1)
    champion, _ = current_champion(open_store(store))
    assert champion is not None
    model = load_model(open_store(store), champion.model_key, champion.sha256)
    page_s, (page_lines, page_count) = timed(lambda: naive_page(files, model))  # type: ignore[misc]
    few = files[:naive_files]
    digit_s, (digit_lines, digit_count) = timed(lambda: naive_digit(few, model))  # type: ignore[misc]
    # The floor takes a second: the best of three keeps this machine's noise out of it.
    floor_s, floor_pages = min(timed(lambda: floor(files)) for _ in range(3))
    naive_pages = int(floor(few))
    pages, digits = summary["pages"], summary["digits"]
    ours = compare(truth, ledger_lines(store, f"{run}-cli"))
    print(f"\n{len(files)} files, {pages} pages, {ours.digits} digits in truth.csv; "
          f"model {summary['model_version']}; {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'':<30}{'seconds':>8}{'pages/s':>9}{'digits/s':>10}{'digit acc':>11}"
          f"{'exact lines':>13}  pages found with another number of lines")  # fmt: skip
    row("digitflow score (CLI)", cli_s, pages, digits, ours)
    extra = f"  steady: {copies - 1} copies more"
    row(extra, (cli_many - cli_s) / (copies - 1), pages, digits, None)
    served_acc = compare(truth, ledger_lines(store, f"{run}-served"))
    row("CLI, prefect server up", served_s, pages, digits, served_acc)
    row(extra, (served_many - served_s) / (copies - 1), pages, digits, None)
    dask_acc = compare(truth, ledger_lines(store, f"{run}-dask"))
    row("digitflow score --dask local", dask_s, pages, digits, dask_acc)
    row(extra, (dask_many - dask_s) / (copies - 1), pages, digits, None)
    row(
        "score flow (in process)",
        flow_s,
        pages,
        digits,
        compare(truth, ledger_lines(store, f"{run}-flow")),
    )
    row(extra, (flow_many - flow_s) / (copies - 1), pages, digits, None)
    # The same digits are found either way: only the time of a copy is of interest here.
    row(f"  no reader procs: a copy of {copies}", thread_many / copies, pages, digits, None)
    row("naive page: resize+predict", page_s, page_count, page_count, compare(truth, page_lines))
    names = {path.name for path in few}
    naive_truth = {key: lines for key, lines in truth.items() if key[0] in names}
    naive_acc = compare(naive_truth, digit_lines)
    row(f"naive digit ({len(few)} files)", digit_s, naive_pages, digit_count, naive_acc)
    row("floor: decode pages only", floor_s, int(floor_pages), 0, None)  # type: ignore[call-overload]
    naive_rate = digit_count / digit_s
    marginal = {"flow": (flow_many, flow_s), "CLI": (cli_many, cli_s),
                "CLI+server": (served_many, served_s),
                "CLI --dask": (dask_many, dask_s)}  # fmt: skip
    # Seconds per page at the steady rate.
    steady = {name: (more - once) / ((copies - 1) * pages)
              for name, (more, once) in marginal.items()}  # fmt: skip
    print(
        "\nfixed cost of a run (its time beyond the pages at the steady rate): "
        + ", ".join(f"{name} {once - pages * steady[name]:.1f} s"
                    for name, (_, once) in marginal.items())
    )  # fmt: skip
    print(f"digitflow score of a folder of one page (the best of three): {one_s:.1f} s on the "
          f"temporary server (which alone answers in {alone_s:.1f} s), {one_served_s:.1f} s "
          "with a server running")  # fmt: skip
    print(
        "speed-up over the naive per-digit loop, end to end: "
        f"flow {digits / flow_s / naive_rate:.1f}x, CLI {digits / cli_s / naive_rate:.1f}x, "
        f"CLI with a server {digits / served_s / naive_rate:.1f}x, "
        f"CLI --dask {digits / dask_s / naive_rate:.1f}x"
    )
    print(f"steady ({copies - 1} copies more of the folder): " + ", ".join(
        f"{name} {digits / (pages * seconds) / naive_rate:.1f}x"
        for name, seconds in steady.items()
    ))  # fmt: skip
    floor_rate = floor_pages / floor_s
    every = copies * pages
    print(f"CPU a page, score flow over {copies} copies ({flow_many:.1f} s): the reader "
          f"processes (decoding, finding lines) {1000 * readers_cpu / every:.1f} ms, the "
          f"scoring process (reading lines, writing, Prefect) {1000 * own_cpu / every:.1f} ms, "
          f"{(own_cpu + readers_cpu) / flow_many:.2f} cores busy; decoding alone "
          f"{1000 / floor_rate:.1f} ms")  # fmt: skip
    print(f"reader processes ({os.cpu_count()}) against finding digits in the shard threads: "
          f"{thread_many / flow_many:.2f}x ({copies} copies)")  # fmt: skip
    share = {name: 100 / seconds / floor_rate for name, seconds in steady.items()}
    print(
        f"against the decode floor ({floor_rate:.1f} pages/s): flow end to end "
        f"{100 * pages / flow_s / floor_rate:.0f} %, steady: "
        + ", ".join(f"{name} {value:.0f} %" for name, value in share.items())
        + " (within 2x of the floor is 50 %)"
    )
    print(f"naive page loop reads {page_count} of {pages} pages (no PDF), one digit each")


if __name__ == "__main__":
    main()
