"""The entry point of `release-runner` and `python -m release_runner`. Signals are made
interruptions before anything else is imported, so one that arrives during start-up still ends
with a summary line and no traceback."""

import gc
import signal
import sys

from release_runner.core.errors import Interrupted
from release_runner.run import interrupts


def run() -> None:
    # Start-up creates some hundred thousand objects that live until the process ends (modules,
    # classes, functions); the cyclic collector would walk them again and again while the
    # imports run. Off until the command's modules are loaded (cli/main.py `_commands` freezes
    # them out of its reach and turns it back on): 12 ms of a 235 ms start, measured over 25
    # interleaved runs of `import release_runner.cli.main, release_runner.commands`.
    gc.disable()
    interrupts.install()
    try:
        # After the signals are ours (see above), and whole: a signal that cut an import halfway
        # would leave a package half made in sys.modules (asyncio, under structlog: "name
        # 'base_events' is not defined" when the summary imports it again). It is raised once
        # the imports are done.
        with interrupts.deferred():
            from release_runner.cli.main import main
        main()
    except Interrupted as interrupted:
        # Before the command could say so itself: while the CLI was imported or set up.
        interrupts.ignore()
        from release_runner.cli import log

        command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
        name = signal.Signals(interrupted.signum).name
        log.early_summary(
            command, "interrupted", 128 + interrupted.signum, f"interrupted by {name} before it started"
        )
        sys.exit(128 + interrupted.signum)


if __name__ == "__main__":
    run()
