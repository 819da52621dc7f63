"""Profiles in force: reloaded when a file changes; a bad edit leaves the last good ones."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from hubflow.profiles import ProfileError
from hubflow.profiles.source import ProfileSource

GOOD = """
profiles:
  - slug: {slug}
    display_name: {slug}
    ides: {{jupyterlab: {{}}}}
"""


def write(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    os.utime(path, (tick, tick))  # a distinct mtime even within one clock tick


def test_a_changed_file_is_reloaded_and_a_bad_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    write(path, GOOD.format(slug="first"), 1_000)
    source = ProfileSource([str(path)])
    assert [p.slug for p in source.current().profiles] == ["first"]

    write(path, GOOD.format(slug="second"), 2_000)
    assert [p.slug for p in source.current().profiles] == ["second"]

    write(path, GOOD.format(slug="Not A Slug"), 3_000)
    assert [p.slug for p in source.current().profiles] == ["second"]
    assert source.last_error and "p.yaml" in source.last_error

    write(path, GOOD.format(slug="third"), 4_000)
    assert [p.slug for p in source.current().profiles] == ["third"]
    assert source.last_error is None


def test_a_bad_file_at_start_raises_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("profiles: [{slug: x}]")
    with pytest.raises(ProfileError, match="bad.yaml"):
        ProfileSource([str(path)])


def configmap_update(mount: Path, version: int, text: str) -> None:
    """Update a folder as the kubelet updates a ConfigMap volume: write a new timestamped
    folder, then swap the `..data` symlink to it; `p.yaml` links to `..data/p.yaml`."""
    folder = mount / f"..2026_{version}"
    folder.mkdir()
    (folder / "p.yaml").write_text(text)
    os.utime(folder / "p.yaml", (1_000, 1_000))  # same mtime each time: only the target moves
    (mount / "..data_tmp").symlink_to(folder.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    if not (mount / "p.yaml").is_symlink():
        (mount / "p.yaml").symlink_to("..data/p.yaml")


def test_a_configmap_symlink_swap_is_seen_as_a_change(tmp_path: Path) -> None:
    configmap_update(tmp_path, 1, GOOD.format(slug="alpha"))
    source = ProfileSource([str(tmp_path)])
    assert [p.slug for p in source.current().profiles] == ["alpha"]

    configmap_update(tmp_path, 2, GOOD.format(slug="omega"))
    assert [p.slug for p in source.current().profiles] == ["omega"]


def test_a_watching_source_logs_a_bad_edit_without_being_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.yaml"
    write(path, GOOD.format(slug="first"), 1_000)
    source = ProfileSource([str(path)])
    logger = logging.getLogger("test.profile.watch")
    source.watch(logger, interval=0.05)
    with caplog.at_level(logging.INFO, logger="test.profile.watch"):
        write(path, GOOD.format(slug="Not A Slug"), 2_000)
        deadline = time.monotonic() + 10
        while not any("Refused a profile change" in r.message for r in caplog.records):
            assert time.monotonic() < deadline, "the watcher logged nothing"
            time.sleep(0.05)
    refusal = next(r for r in caplog.records if "Refused" in r.message)
    assert refusal.levelno == logging.ERROR and "p.yaml" in refusal.getMessage()
    assert [p.slug for p in source.current().profiles] == ["first"]
