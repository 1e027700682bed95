"""The live controls remembered per target between runs: a small JSON file in the user's config folder.

    $XDG_CONFIG_HOME/puppet/live.json (else ~/.config/puppet/live.json)
    {"format": "puppet-live-settings", "version": 1,
     "targets": {"/abs/path/mona.pt": {"gains": {"eyes": 1.0, "mouth": 1.3, ...}}}}

Targets are keyed by their file's absolute path, and nothing is written into the target file (targets are
shared; these are one user's preferences). A missing file means defaults; an unreadable or malformed one is a
one-line warning and defaults (the next change rewrites it), never a failed start. Written atomically.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from puppet.files import write_json
from puppet.live.gains import Gains

log = logging.getLogger(__name__)

MARKER = "puppet-live-settings"
VERSION = 1


def config_root() -> Path:
    """puppet's config folder: $XDG_CONFIG_HOME/puppet, else ~/.config/puppet."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "puppet"


def target_key(path: str | os.PathLike) -> str:
    return str(Path(path).expanduser().resolve())


class Settings:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else config_root() / "live.json"
        self.targets: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not valid JSON"
            log.warning(f"{self.path}: can't read the remembered settings ({why}); using the defaults")
            return {}
        if (not isinstance(data, dict) or data.get("format") != MARKER or data.get("version") != VERSION
                or not isinstance(data.get("targets"), dict)):
            log.warning(f"{self.path}: not a puppet live settings file (version {VERSION}); "
                        f"using the defaults")
            return {}
        return {k: v for k, v in data["targets"].items() if isinstance(v, dict)}

    def gains(self, target: str | os.PathLike) -> Gains:
        """The gains remembered for this target file (defaults when none, or a bad entry: with a warning)."""
        entry = self.targets.get(target_key(target), {}).get("gains")
        if entry is None:
            return Gains()
        try:
            if not isinstance(entry, dict):
                raise ValueError("not a table of gains")
            return Gains(**{k: v for k, v in entry.items() if k in Gains.__dataclass_fields__})
        except (TypeError, ValueError) as e:
            log.warning(f"{self.path}: the gains remembered for {target} are bad ({e}); using the defaults")
            return Gains()

    def remember(self, target: str | os.PathLike, gains: Gains) -> None:
        """Store this target's gains and write the file; a write that fails is a warning, not a crash."""
        self.targets.setdefault(target_key(target), {})["gains"] = gains.as_dict()
        try:
            write_json(self.path, {"format": MARKER, "version": VERSION, "targets": self.targets})
        except OSError as e:
            log.warning(f"{self.path}: can't save the settings ({e.strerror or e}); "
                        f"they last for this run only")
