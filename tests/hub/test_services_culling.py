"""Culling in the hub's configuration: the service and its role, the activity report in users'
servers instead of JupyterHub's stock activity, the warning on hub pages; off when asked."""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config

from hubflow.hub.config import configure
from hubflow.hub.services import CULLER_SERVICE as SERVICE_NAME
from hubflow.hub.settings import CullingSettings, HubflowSettings


def test_the_hub_runs_the_culler_and_servers_report_real_activity(tmp_path: Path) -> None:
    c = Config()
    configure(c, HubflowSettings.from_env({"HUBFLOW_DATA_DIR": str(tmp_path)}))
    (service,) = [s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME]
    assert service["command"][1:] == ["-m", "hubflow.culling"]
    # The culler gets the hub's settings whole, as the hub resolved them.
    assert service["environment"]["HUBFLOW_PROFILES"] == str(HubflowSettings().profile_paths[0])
    assert service["environment"]["HUBFLOW_DATA_DIR"] == str(tmp_path)
    assert service["environment"]["HUBFLOW_CULL_GPU_IDLE_TIMEOUT"] == "1200"
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == SERVICE_NAME]
    assert {"delete:servers", "admin:server_state"} <= set(role["scopes"])
    assert c.JupyterHub.proxy_class == "hubflow.hub.proxy.ActivityBlindProxy"
    assert c.Spawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] == "0"
    assert "--ServerApp.jpserver_extensions={'hubflow.launcher.activity': True}" in c.Spawner.args
    assert callable(c.JupyterHub.template_vars["announcement"])


def test_culling_off_adds_nothing(tmp_path: Path) -> None:
    c = Config()
    configure(
        c,
        HubflowSettings.from_env({"HUBFLOW_DATA_DIR": str(tmp_path)}),
        culling=CullingSettings(enabled=False),
    )
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["hubflow-jobs"] and "args" not in c.Spawner
