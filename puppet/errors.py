"""User-facing errors: one line naming the file or device and the fix; no traceback unless --debug."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from models.errors import PuppetError

__all__ = ["PuppetError", "run_cli"]


def run_cli(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a command's main(argv); turn PuppetError into `error: ...` and exit code 2.

    `--debug` anywhere on the command line re-raises instead, with the full traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    from puppet.log import configure

    configure(debug)
    try:
        code = main(args)
    except PuppetError as e:
        if debug:
            raise
        msg = " ".join(str(e).split())  # keep it to one line
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
