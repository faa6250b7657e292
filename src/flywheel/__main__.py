"""``python -m flywheel`` runs the command line."""

from flywheel.cli.main import main

main()
