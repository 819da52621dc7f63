"""The jobs API's OpenAPI 3.1 document (jobs/openapi.yaml), served at {prefix}/api/openapi.json."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from tornado import web

DOCUMENT = Path(__file__).with_name("openapi.yaml")


@functools.cache
def openapi_document(prefix: str = "/services/hubflow-jobs") -> dict[str, Any]:
    """The document, its server URL set to the service's prefix."""
    document: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    document["servers"] = [{"url": prefix.rstrip("/")}]
    return document


class OpenAPIHandler(web.RequestHandler):
    """The document, to anyone (it holds nothing but the API's shape)."""

    def get(self) -> None:
        prefix = self.request.path.removesuffix("/api/openapi.json")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi_document(prefix)))
