"""The one hub config: picks the mode, loads the profiles and wires hubflow's parts.

Settings come from the environment (see docs/admin.md): HUBFLOW_MODE, HUBFLOW_PROFILES,
HUBFLOW_DATA_DIR, HUBFLOW_IP, HUBFLOW_PORT, HUBFLOW_AUTHENTICATOR, HUBFLOW_GPUS, ...
Anything set below the `configure(c)` call overrides hubflow's choices.
"""

from hubflow.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)
