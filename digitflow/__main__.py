"""The ``digitflow`` command (and ``python -m digitflow``): Prefect's temporary server, if a
flow will need one, starts before the command line loads (``digitflow.api_server``), and
such a command loads with the garbage collector paused until its flow starts
(``digitflow.collector``).

The command ends its process once every exit handler has run (the temporary server's stop,
the reader processes', the logs' flush), without Python's teardown of each module that
Prefect, ONNX Runtime and pyarrow loaded: about a third of a second (a tenth of a one-page
``digitflow score`` against a running server), with nothing left to write.
"""

import atexit
import contextlib
import os
import sys

from digitflow import api_server, collector

_status = [1]  # the process's exit status: 1 unless the command says otherwise


def _end_process() -> None:
    """The last exit handler: flush the output and end the process with the command's status."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(_status[0])


def _exit_status(code: object) -> int:
    """The status Python gives ``sys.exit(code)``: None is 0, a number itself, else 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def main() -> None:
    """Entry point of the ``digitflow`` console script: it ends the process when it is done."""
    atexit.register(_end_process)  # registered first, so it runs after every other handler
    command = sys.argv[1] if len(sys.argv) > 1 else None
    api_server.start_early(command)
    if command in api_server.FLOW_COMMANDS:
        collector.pause()  # while it loads: resumed before its flow runs (cli.runner)
    from digitflow.cli import main as command_line

    try:
        command_line()
        _status[0] = 0
    except SystemExit as exc:
        _status[0] = _exit_status(exc.code)
        raise
    except KeyboardInterrupt:
        _status[0] = 130  # as a shell reports a command ended by Ctrl-C
        raise


if __name__ == "__main__":
    main()
