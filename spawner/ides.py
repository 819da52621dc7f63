"""The IDEs a user's server can serve, where each one is reached, and whether this machine has it."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Ide:
    """An IDE: its name in profiles, what users read, the URL path it opens at, and what it needs."""

    name: str
    display_name: str
    default_url: str
    program: str | None = None
    proxy_module: str | None = None

    def unavailable_reason(self) -> str | None:
        """Why this IDE cannot start on this machine (local mode), or None when it can."""
        if self.proxy_module and importlib.util.find_spec(self.proxy_module) is None:
            return f"{self.display_name} needs the Python package {self.proxy_module}"
        if self.program and shutil.which(self.program) is None:
            return (
                f"{self.display_name} is not installed on this machine ({self.program} not found)"
            )
        return None


IDES: dict[str, Ide] = {
    "jupyterlab": Ide("jupyterlab", "JupyterLab", "/lab"),
    # VS Code and RStudio are served by jupyter-server-proxy inside the single-user server.
    "vscode": Ide("vscode", "VS Code", "/vscode/", "code-server", "jupyter_vscode_proxy"),
    "rstudio": Ide("rstudio", "RStudio", "/rstudio/", "rserver", "jupyter_rsession_proxy"),
}
