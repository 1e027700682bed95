"""The one command-line parser of every entry point: argparse, with a bad flag as one line.

`Parser.error` raises a PuppetError, which `puppet.errors.run_cli` prints as `error: ...` with exit code 2:
no usage block, the same as every other bad input. Flags that mean the same thing are named the same in every
command (`--target`, `--out`, `--config`, `--device`, `--steps`, `--seed`, `--json`).
"""

from __future__ import annotations

import argparse

from puppet.errors import PuppetError


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one-line PuppetErrors (exit 2 through run_cli)."""

    def error(self, message):
        raise PuppetError(f"{self.prog}: {message}; see --help")
