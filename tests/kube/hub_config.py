"""The hub of the Kubernetes tests: hubflow's own configuration, plus what the test cluster's
node agent needs and a real kubelet would not."""

from hubflow.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)

# The node agent (tests/kube/cluster/node_agent.py) runs containers as local processes of this
# machine's user (root here) and ignores the pod's runAsUser (1000), which a real kubelet applies;
# jupyter-server refuses to run as root unless told otherwise.
c.KubeSpawner.args = [*c.Spawner.get("args", []), "--ServerApp.allow_root=True"]
# Spawns that cannot succeed fail after their pod is blocked this long (seconds).
c.HubflowKubeSpawner.blocked_timeout = 3
