"""The jobs service's root (its prefix): what it is and where its API is, for anyone.

The hub checks that a managed service answers at its URL before routing to it; this answer
(200, no data of anyone's) is that check's.
"""

from __future__ import annotations

from tornado import web


class ServiceRootHandler(web.RequestHandler):
    """GET the prefix: the service's name and its jobs API's path."""

    def initialize(self, prefix: str) -> None:
        self.prefix = prefix

    def get(self) -> None:
        self.finish({"service": "hubflow-jobs", "api": f"{self.prefix}/api/jobs"})
