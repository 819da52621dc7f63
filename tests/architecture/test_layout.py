"""The layout is the architecture: one package per process, imports one way, one settings
reference generated from the declarations (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hubflow.hub.settings import reference

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "spawner", "profiles", "jobs", "culling", "launcher")
#: What each package may import of hubflow's other packages.
ALLOWED = {
    "launcher": set(),
    "profiles": set(),
    "spawner": {"profiles", "launcher"},
    "hub": {"spawner", "profiles", "launcher"},
    "jobs": {"hub", "spawner", "profiles", "launcher"},
    # the culler asks the jobs API, never the jobs database (one owner per database)
    "culling": {"hub", "profiles", "launcher"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """hubflow package -> the modules of `package` that import it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "hubflow" and len(parts) > 1 and parts[1] != package:
                    found.setdefault(parts[1], set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package: str) -> None:
    wrong = {
        other: sorted(modules)
        for other, modules in imported_packages(package).items()
        if other not in ALLOWED[package]
    }
    assert not wrong, f"{package} must not import {wrong}"


def test_the_allowed_imports_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join((*path, package))}"
        if package not in done:
            for other in ALLOWED[package]:
                visit(other, (*path, package))
            done.add(package)

    for package in PACKAGES:
        visit(package, ())


def test_the_hub_config_in_local_mode_loads_no_cluster_client_no_database_no_services() -> None:
    code = (
        "import sys, hubflow.hub.config\n"
        "heavy = ('kubernetes', 'kubernetes_asyncio', 'kubespawner', 'sqlalchemy')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}"
        " | {m for m in sys.modules if m.startswith(('hubflow.jobs', 'hubflow.culling'))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_settings_reference_is_generated_from_the_declarations() -> None:
    written = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert written == reference(), (
        "docs/settings.md is stale: python -m hubflow.hub.settings > docs/settings.md"
    )
