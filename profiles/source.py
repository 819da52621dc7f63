"""The profiles in force: loaded from the admin's files, reloaded when they change.

A bad edit is refused with its error logged, and the last good profiles stay in force.
A file is known by what it resolves to (inode, size, modification time), so a Kubernetes
ConfigMap update, which swaps the `..data` symlink to a new folder, is seen like an edit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from hubflow.profiles import ProfileCatalog, ProfileError, load_profiles
from hubflow.profiles.loader import profile_files

log = logging.getLogger(__name__)

#: How often a watching source looks at its files, in seconds.
WATCH_INTERVAL_S = 2.0

Stamp = tuple[tuple[str, str, int, int, int], ...]


def _fingerprint(paths: Sequence[str]) -> Stamp:
    """What each profile file resolves to now; a missing path is part of the stamp too."""
    try:
        files = profile_files(paths)
    except ProfileError as e:
        return (("", str(e), -1, -1, -1),)
    stamp = []
    for name in files:
        target = os.path.realpath(name)
        try:
            st = os.stat(target)
            stamp.append((name, target, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append((name, target, -1, -1, -1))
    return tuple(stamp)


class ProfileSource:
    """Profiles from a set of files or folders, loaded at once (a bad file raises) and kept fresh."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = tuple(paths)
        self.log = log
        self._lock = threading.Lock()
        self._stamp = _fingerprint(self.paths)
        self._catalog = load_profiles(self.paths)
        self._watcher: threading.Thread | None = None
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
                    self.log.info("Reloaded profiles from %s", ", ".join(self.paths))
                except ProfileError as e:
                    self.last_error = str(e)
                    self.log.error("Refused a profile change, the last good profiles stay: %s", e)
        return self._catalog

    def watch(
        self, logger: logging.Logger | None = None, interval: float = WATCH_INTERVAL_S
    ) -> None:
        """Look at the files every `interval` seconds in a daemon thread (once per source), so a
        change is applied, or a bad one logged to `logger`, even when nobody asks for profiles."""
        if logger is not None:
            self.log = logger
        if self._watcher is not None:
            return

        def loop() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.current()
                except Exception:  # a watcher must outlive any surprise, and say what it was
                    self.log.exception("Checking the profile files failed")

        self._watcher = threading.Thread(target=loop, name="hubflow-profile-watch", daemon=True)
        self._watcher.start()


_sources: dict[tuple[str, ...], ProfileSource] = {}


def profile_source(paths: Sequence[str]) -> ProfileSource:
    """The one shared source for a set of paths (every spawner of the hub uses the same)."""
    key = tuple(paths)
    if key not in _sources:
        _sources[key] = ProfileSource(key)
    return _sources[key]
