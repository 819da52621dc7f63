"""Culling: idle and old users' servers are stopped, one policy for every IDE.

- `activity`: a Jupyter server extension inside each user's server that reports *real* activity
  to the hub (kernels running or printing, terminals, VS Code and RStudio through
  jupyter-server-proxy), not an open browser tab polling the server;
- `proxy`: configurable-http-proxy whose traffic (an open tab's polling too) is not activity;
- `settings`: the deployment's defaults (HUBFLOW_CULL_*);
- `policy`: each profile's idle timeout and maximum age, with deployment defaults (shorter idle
  timeouts for servers holding GPUs);
- `service`: the hub service that runs jupyterhub-idle-culler once per policy on a view of the
  hub's servers (`view`), skips servers with unfinished jobs (it asks the jobs API) and warns
  users first (`notices`);
- `wiring`: adds all of it to a JupyterHub configuration.
"""
