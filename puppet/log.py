"""One logging format for every command: `puppet: message` (the top-level package's name), `puppet: warning:
message` for warnings, on stderr. Library modules log (`log = logging.getLogger(__name__)`) and never print;
commands configure logging once, through `puppet.errors.run_cli`."""

from __future__ import annotations

import logging
import sys


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        top = record.name.split(".")[0]
        if top in ("root", "__main__"):  # a command run with `python -m` logs as __main__
            top = "puppet"
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{top}: {level}{record.getMessage()}"


def configure(debug: bool = False) -> None:
    """Send INFO and above (DEBUG with --debug) of our packages to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    for name in ("puppet", "models", "export", "bench", "__main__"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False
