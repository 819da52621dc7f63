"""Profiles in force: reloaded when a file changes; a bad edit leaves the last good ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hubflow.hub.profile_source import ProfileSource
from hubflow.profiles import ProfileError

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
