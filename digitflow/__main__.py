"""The ``digitflow`` command (and ``python -m digitflow``): Prefect's temporary server, if a
flow will need one, starts before the command line loads (``digitflow.api_server``)."""

import sys

from digitflow import api_server


def main() -> None:
    """Entry point of the ``digitflow`` console script."""
    api_server.start_early(sys.argv[1] if len(sys.argv) > 1 else None)
    from digitflow.cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
