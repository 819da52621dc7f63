"""A hub for the image tests: the project's hub config, with each user's server started from an
image's Python environment (IMAGE_VENV) by the image's command, as a pod would start it.

The hub is the harness here; what is under test is the image's environment: its
jupyterhub-singleuser, its kernels, its proxies. Like a pod, the server runs as the hub's own
system user (no user switch), with the image's PATH and a workspace as HOME (IMAGE_HOME).
IMAGE_PROGRAMS names folders of programs the image installs outside Python (code-server).
"""

import os

from jupyterhub.spawner import LocalProcessSpawner

from hubflow.hub.config import configure

VENV = os.environ["IMAGE_VENV"]
HOME = os.environ["IMAGE_HOME"]
PROGRAMS = os.environ.get("IMAGE_PROGRAMS", "")


class ImageSpawner(LocalProcessSpawner):
    """Runs the image's command from its environment, with no user switch."""

    def make_preexec_fn(self, name):
        return None

    def user_env(self, env):
        env.update(HOME=HOME, USER=self.user.name, SHELL="/bin/bash")
        return env


c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)
c.JupyterHub.spawner_class = ImageSpawner
c.Spawner.cmd = [f"{VENV}/bin/jupyterhub-singleuser"]
c.Spawner.env_keep = []
PATH = os.pathsep.join(filter(None, [f"{VENV}/bin", PROGRAMS, "/usr/local/bin:/usr/bin:/bin"]))
# Added to what hubflow's wiring sets for every server (e.g. the activity reporting's settings).
c.Spawner.environment = {**c.Spawner.get("environment", {}), "PATH": PATH, "LANG": "C.UTF-8"}
c.Spawner.notebook_dir = HOME
c.Spawner.default_url = "/lab"
# A pod runs as uid 1000; only a test machine running as root needs this.
c.Spawner.args = [*c.Spawner.get("args", []), *(["--allow-root"] if os.geteuid() == 0 else [])]
