"""`python -m release_runner`: the same entry point as the console script."""

from release_runner.cli import main

main()
