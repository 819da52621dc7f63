"""Copy the profile format's JSON schema and the shipped profiles into the chart.

`python helm/sync_profiles.py` rewrites the `profile.*` definitions of
helm/hubflow/values.schema.json from profiles/schema.json, and helm/hubflow/files/
default-profiles.yaml from profiles/default.yaml (Helm reads no file outside the chart);
`--check` only says whether they differ (tests/helm runs it). The chart's schema is draft-07,
which Helm 3 and 4 both read: `$defs` become `definitions`, named `profile.<name>`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROFILE_SCHEMA = ROOT / "profiles" / "schema.json"
VALUES_SCHEMA = ROOT / "helm" / "hubflow" / "values.schema.json"
SHIPPED_PROFILES = ROOT / "profiles" / "default.yaml"
CHART_PROFILES = ROOT / "helm" / "hubflow" / "files" / "default-profiles.yaml"
PREFIX = "profile."


def _rewrite_refs(node: Any) -> Any:
    """A copy of a schema node with `#/$defs/X` references pointing at `#/definitions/profile.X`."""
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/$defs/", f"#/definitions/{PREFIX}")
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def synced(values_schema: dict[str, Any], profile_schema: dict[str, Any]) -> dict[str, Any]:
    """The values schema with its profile.* definitions replaced by the profile schema's $defs."""
    own = {
        name: definition
        for name, definition in values_schema.get("definitions", {}).items()
        if not name.startswith(PREFIX)
    }
    profile = {f"{PREFIX}{name}": d for name, d in profile_schema["$defs"].items()}
    return {**values_schema, "definitions": {**own, **_rewrite_refs(profile)}}


def render(schema: dict[str, Any]) -> str:
    """The schema as the chart's file holds it."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected() -> dict[Path, str]:
    """What the chart's copies must hold, by file."""
    values = json.loads(VALUES_SCHEMA.read_text(encoding="utf-8"))
    profile = json.loads(PROFILE_SCHEMA.read_text(encoding="utf-8"))
    return {
        VALUES_SCHEMA: render(synced(values, profile)),
        CHART_PROFILES: SHIPPED_PROFILES.read_text(encoding="utf-8"),
    }


def main(argv: list[str]) -> int:
    """Rewrite the chart's copies, or with --check report those out of date."""
    if argv not in ([], ["--check"]):
        print("usage: python helm/sync_profiles.py [--check]")
        return 2
    stale = [
        path
        for path, text in expected().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if argv == ["--check"]:
        for path in stale:
            print(f"{path} is out of date: run python helm/sync_profiles.py")
        return 1 if stale else 0
    for path, text in expected().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
