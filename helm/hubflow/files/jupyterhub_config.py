"""The hub's config in the Helm chart: hubflow's own wiring from the HUBFLOW_* variables the
Deployment sets (the external databases' URLs among them, from Secrets), then extraConfig."""

from pathlib import Path

from hubflow.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)

# hub.extraConfig: the operator's snippets, mounted beside this file, in name order.
for snippet in sorted(Path(__file__).parent.glob("extra-*.py")):
    exec(compile(snippet.read_text(encoding="utf-8"), str(snippet), "exec"))
