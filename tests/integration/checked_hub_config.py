"""A hub for the stop tests: the project's hub config, with its services' health checked every
second (60 s by default), so that a check falls in every stop (tests/integration/test_start_stop.py)."""

from hubflow.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)
c.JupyterHub.service_check_interval = 1
