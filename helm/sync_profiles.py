"""Copy the profile format's JSON schema into the chart's values schema.

`python helm/sync_profile_schema.py` rewrites the `profile.*` definitions of
helm/hubflow/values.schema.json from profiles/schema.json; `--check` only says whether they
differ (tests/helm runs it). The chart's schema is draft-07, which Helm 3 and 4 both read:
`$defs` become `definitions`, named `profile.<name>`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROFILE_SCHEMA = ROOT / "profiles" / "schema.json"
VALUES_SCHEMA = ROOT / "helm" / "hubflow" / "values.schema.json"
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


def expected_text() -> str:
    """What values.schema.json must hold given profiles/schema.json."""
    values = json.loads(VALUES_SCHEMA.read_text(encoding="utf-8"))
    profile = json.loads(PROFILE_SCHEMA.read_text(encoding="utf-8"))
    return render(synced(values, profile))


def main(argv: list[str]) -> int:
    """Rewrite the chart's schema, or with --check report whether it is out of date."""
    text = expected_text()
    if argv == ["--check"]:
        if VALUES_SCHEMA.read_text(encoding="utf-8") != text:
            print(f"{VALUES_SCHEMA} is out of date: run python helm/sync_profile_schema.py")
            return 1
        return 0
    if argv:
        print("usage: python helm/sync_profile_schema.py [--check]")
        return 2
    VALUES_SCHEMA.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
