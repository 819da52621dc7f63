"""The checked form of a submission request (the states and fields: launcher/contract.py)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from hubflow.launcher.contract import FRAMEWORKS, MAX_PAYLOAD_BYTES, SUBMIT_FIELDS


class RequestError(ValueError):
    """A submission request is malformed; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ -]{0,62}$")


@dataclass(frozen=True)
class JobRequest:
    """A checked `POST api/jobs` body."""

    payload: bytes
    workers: int = 1
    gpus_per_worker: int = 0
    framework: str = "pytorch"
    name: str = ""
    server_name: str = ""

    @property
    def total_gpus(self) -> int:
        return self.workers * self.gpus_per_worker


def _int_field(body: dict[str, Any], field: str, default: int, minimum: int) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestError(field, f"must be an integer ≥ {minimum}")
    return value


def _str_field(body: dict[str, Any], field: str, default: str) -> str:
    value = body.get(field, default)
    if not isinstance(value, str):
        raise RequestError(field, "must be a string")
    return value


def parse_job_request(body: Any) -> JobRequest:
    """Check a submission body; raise RequestError naming the first bad or unknown field."""
    if not isinstance(body, dict):
        raise RequestError("body", "must be a JSON object")
    known = set(SUBMIT_FIELDS)
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
    if "payload" not in body:
        raise RequestError("payload", "required (base64 of the cloudpickled payload)")
    raw = _str_field(body, "payload", "")
    try:
        payload = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("payload", "must be base64") from None
    if not payload or len(payload) > MAX_PAYLOAD_BYTES:
        raise RequestError("payload", f"must hold 1 byte to {MAX_PAYLOAD_BYTES // 2**20} MiB")
    framework = _str_field(body, "framework", "pytorch")
    if framework not in FRAMEWORKS:
        raise RequestError("framework", f"must be one of {', '.join(FRAMEWORKS)}")
    name = _str_field(body, "name", "")
    if name and not NAME_PATTERN.match(name):
        raise RequestError("name", "must be 1-63 letters, digits, '.', '_', '-' or spaces")
    return JobRequest(
        payload=payload,
        workers=_int_field(body, "workers", 1, 1),
        gpus_per_worker=_int_field(body, "gpus_per_worker", 0, 0),
        framework=framework,
        name=name,
        server_name=_str_field(body, "server_name", ""),
    )
