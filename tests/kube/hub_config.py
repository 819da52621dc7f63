"""The hub of the Kubernetes tests: hubflow's own configuration, plus what the simulated cluster
needs and a real one would not."""

from hubflow.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)

# The simulator's kubelet runs containers as this machine's user (root here), where a real kubelet
# runs them as the pod's runAsUser (1000); jupyter-server refuses root unless told otherwise.
c.KubeSpawner.args = [*c.Spawner.get("args", []), "--ServerApp.allow_root=True"]
# Spawns that cannot succeed fail after their pod is blocked this long (seconds).
c.HubflowKubeSpawner.blocked_timeout = 3
