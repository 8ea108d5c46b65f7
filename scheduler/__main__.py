"""``python -m scheduler`` is the ``apptflow`` command."""

from scheduler.cli import main

main(prog_name="apptflow")
