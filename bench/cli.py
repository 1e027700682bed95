"""What the bench commands share: an argument parser whose errors are one line, and the JSON writer."""

from __future__ import annotations

import argparse
import json

from puppet.errors import PuppetError


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option as a one-line PuppetError (exit 2 through run_cli), not usage text."""

    def error(self, message):
        raise PuppetError(f"{self.prog}: {message}; see --help")


def write_json(path, obj) -> None:
    """Write `obj` as indented JSON, atomically."""
    from puppet.files import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())
