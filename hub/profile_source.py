"""The profiles in force: loaded from the admin's files, reloaded when they change.

A bad edit is refused with its error logged, and the last good profiles stay in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from hubflow.profiles import ProfileCatalog, ProfileError, load_profiles

log = logging.getLogger(__name__)


def _fingerprint(paths: Sequence[str]) -> tuple[tuple[str, float, int], ...]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    stamp = []
    for f in files:
        try:
            st = f.stat()
            stamp.append((str(f), st.st_mtime, st.st_size))
        except OSError:
            stamp.append((str(f), -1.0, -1))
    return tuple(stamp)


class ProfileSource:
    """Profiles from a set of files or folders, loaded at once (a bad file raises) and kept fresh."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = tuple(paths)
        self._lock = threading.Lock()
        self._stamp = _fingerprint(self.paths)
        self._catalog = load_profiles(self.paths)
        self.last_error: str | None = None

    def current(self) -> ProfileCatalog:
        """The catalog in force: reloaded if a file changed, the last good one if the change is bad."""
        stamp = _fingerprint(self.paths)
        if stamp == self._stamp:
            return self._catalog
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._catalog = load_profiles(self.paths)
                    self.last_error = None
                    log.info("Reloaded profiles from %s", ", ".join(self.paths))
                except ProfileError as e:
                    self.last_error = str(e)
                    log.error("Refused a profile change, the last good profiles stay: %s", e)
        return self._catalog


_sources: dict[tuple[str, ...], ProfileSource] = {}


def profile_source(paths: Sequence[str]) -> ProfileSource:
    """The one shared source for a set of paths (every spawner of the hub uses the same)."""
    key = tuple(paths)
    if key not in _sources:
        _sources[key] = ProfileSource(key)
    return _sources[key]
