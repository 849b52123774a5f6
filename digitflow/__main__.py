"""``python -m digitflow`` runs the command line."""

from digitflow.cli import main

main()
