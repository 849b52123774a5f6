"""``digitflow review``: the page where a person corrects what a scoring batch doubted, and
its corrections out to a CSV and back in for those who correct elsewhere.

``digitflow review [BATCH]`` is ``digitflow review open [BATCH]``: a first argument that
names no command of the group is the batch of ``open``.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import socket
import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from digitflow.cli.errors import Context
from digitflow.cli.options import JsonOpt, StoreOpt, settings
from digitflow.console import print_summary
from digitflow.errors import NotFoundError, ParameterError
from digitflow.storage import ObjectStore, open_existing

DEFAULT_COMMAND = "open"


class DefaultOpen(TyperGroup):
    """A group whose first argument, when it names none of its commands, goes to ``open``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        named = args and (args[0] in self.commands or args[0] in ctx.help_option_names)
        return super().parse_args(ctx, args if named else [DEFAULT_COMMAND, *args])


app = typer.Typer(cls=DefaultOpen, no_args_is_help=False)


@app.callback()
def review() -> None:
    """Correct what a scoring batch doubted: on a page in the browser (review [BATCH] is
    review open [BATCH]), or through a CSV (review export, review import)."""


BatchArg = Annotated[str, typer.Argument(help="The scoring batch (its id, as score printed).")]


def _store(store: str | None) -> ObjectStore:
    return open_existing(settings(store).store)


def _newest(store: ObjectStore) -> str:
    from digitflow.corrections import items

    found = items.batches(store)
    if not found:
        raise NotFoundError(
            f"no scoring batch in {store.uri} has anything to review: run `digitflow score` "
            "first, or give the store that holds the batch with --store"
        )
    return found[0]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container's user without a name
        return ""


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port), before the server starts,
    so that its URL is known and a port in use is a one-line error."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ParameterError("host", f"{host!r} is not an address here ({exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # a browser opened at once waits for the server, not refused
    except OSError as exc:
        sock.close()
        field = "port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "host"
        raise ParameterError(
            field, f"cannot listen on {host}:{port} ({exc.strerror}): choose another "
            "--port, or --port 0 for a free one"
        ) from None  # fmt: skip
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@app.command("open")
def open_page(
    batch: Annotated[
        str | None,
        typer.Argument(help="The scoring batch [default: the newest with items to review]"),
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")] = 0,
    host: Annotated[
        str, typer.Option(help="Address to listen on. The page has no login: keep it local.")
    ] = "127.0.0.1",
    by: Annotated[
        str | None, typer.Option(help="Who corrects, saved with each answer [default: OS user]")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-browser", help="Open the page in the default browser.")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Serve the review page of a batch until Ctrl+C: one item at a time, by keyboard."""
    import uvicorn

    from digitflow.corrections import record
    from digitflow.corrections.web import create_app, is_loopback, names_for

    uri = settings(store).store
    s = open_existing(uri)
    batch_id = batch or _newest(s)
    sock = _listen(host, port)
    address = sock.getsockname()[0]
    names = names_for(host, address)
    try:
        page = create_app(uri, batch_id, _os_user() if by is None else by, names)
    except BaseException:
        sock.close()
        raise
    count = len(page.state.items)
    url = _url(sock)
    print(f"Review {count} items of batch {batch_id} at {url} — Ctrl+C to stop", flush=True)
    if not is_loopback(address):
        Console(stderr=True).print(
            f"[yellow]note:[/] listening on {host}: anyone who reaches it over the network "
            f"can save corrections (it answers at an IP address or {', '.join(sorted(names))})",
            highlight=False,
        )
    if open_browser:
        webbrowser.open(url)
    with sock, contextlib.suppress(KeyboardInterrupt):  # uvicorn raises Ctrl+C again
        uvicorn.Server(uvicorn.Config(page, log_level="warning")).run(sockets=[sock])
    done = {c.item for c in record.read_all(s, batch_id)}
    left = sum(1 for item in page.state.items if item.id not in done)
    print(f"Stopped: {left} of {count} items of batch {batch_id} left to review", flush=True)


@app.command("export")
def export(
    batch: BatchArg,
    csv: Annotated[Path, typer.Option("--csv", dir_okay=False, help="The CSV file to write.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a batch's review items as file,page,line,digits,read (the answer saved, if any,
    and what was read) to a CSV, to correct elsewhere and import back."""
    from digitflow.corrections.exchange import export_csv

    rows = export_csv(_store(store), batch, csv)
    # Where the CSV went to standard output, what was written is said beside it, not in it.
    out = sys.stderr if str(csv) in ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1") else None
    if as_json:
        print(json.dumps({"batch_id": batch, "rows": rows, "csv": str(csv)}), file=out)
    else:
        print(f"Wrote {rows} lines of batch {batch} to {csv}", file=out)


@app.command("import")
def import_(
    batch: BatchArg,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A file,page,line,digits CSV.")
    ],
    by: Annotated[
        str | None, typer.Option(help="Who corrected, saved with each answer [default: OS user]")
    ] = None,
    follow_outside_links: Annotated[
        bool,
        typer.Option(
            help="Read again symbolic links that lead out of the batch's input "
            "folder, as a batch scored with this option read them."
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Save every row of a CSV as a correction of the batch (all rows, or none if one is
    wrong; rows with no digits are no answer)."""
    from digitflow.corrections.exchange import import_csv

    summary = import_csv(
        _store(store), batch, file, _os_user() if by is None else by, follow_outside_links
    )
    if as_json:
        print(summary.model_dump_json())
    else:
        print_summary(Console(), "Imported corrections", summary.model_dump(mode="json"))
