"""Where hubflow's Jupyter extensions live in the hubflow source folder, for users' servers.

A wheel installs them as data files into the environment (`share/jupyter/labextensions/...`,
`etc/jupyter/jupyter_server_config.d/hubflow.json`), where Jupyter looks by itself. An editable
install (`pip install -e .`) installs no data files, so the local spawner puts these folders
on the server's JUPYTER_PATH and JUPYTER_CONFIG_PATH.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_LABEXTENSION = Path(__file__).resolve().parent / "labextension"

#: A Jupyter data folder holding the prebuilt JupyterLab extension (labextensions/hubflow-jobs).
DATA_DIR = _LABEXTENSION / "jupyter-data"

#: A Jupyter config folder whose jupyter_server_config.d enables hubflow.launcher.serverext.
CONFIG_DIR = _LABEXTENSION / "jupyter-config"


def _prepend(folder: Path, value: str | None) -> str:
    return os.pathsep.join(filter(None, [str(folder), value]))


def extension_paths(env: Mapping[str, str]) -> dict[str, str]:
    """JUPYTER_PATH and JUPYTER_CONFIG_PATH of `env` with hubflow's folders in front (none
    when this is an installed wheel, which carries no such folders: its data files serve)."""
    paths = {}
    if DATA_DIR.is_dir():
        paths["JUPYTER_PATH"] = _prepend(DATA_DIR, env.get("JUPYTER_PATH"))
    if CONFIG_DIR.is_dir():
        paths["JUPYTER_CONFIG_PATH"] = _prepend(CONFIG_DIR, env.get("JUPYTER_CONFIG_PATH"))
    return paths
