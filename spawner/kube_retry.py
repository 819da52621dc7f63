"""Which Kubernetes API errors are worth another try, and how to say the others plainly.

KubeSpawner retries its requests with exponential backoff on time-outs and 409 conflicts but
fails a spawn on any other error; an API server under load answers 429 (with Retry-After) or a
5xx for a moment, which deserves another try, not a failed spawn.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from kubernetes_asyncio.client.rest import ApiException

#: Statuses an API server answers while overloaded or restarting.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})

#: The longest Retry-After honoured (seconds); the spawn's own retry timeout still applies.
MAX_RETRY_AFTER = 10.0


def retry_after(error: ApiException) -> float:
    """The Retry-After the server sent (seconds, capped), or 0."""
    headers: Mapping[str, str] = error.headers or {}
    try:
        return min(float(headers.get("Retry-After", "")), MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return 0.0


class APIError(Protocol):
    """What both Kubernetes clients' ApiException carry (kubernetes and kubernetes_asyncio)."""

    status: Any
    reason: Any
    body: Any


def api_error_message(error: APIError) -> str:
    """'422 Invalid: <the API server's message>' from either client's ApiException."""
    try:
        message = json.loads(error.body or "")["message"]
    except (TypeError, ValueError, KeyError):
        message = error.reason or ""
    return f"{error.status} {error.reason}: {message}"


async def retry_transient(
    request: Awaitable[bool], what: str, log: logging.Logger | logging.LoggerAdapter
) -> bool:
    """Await a KubeSpawner request (True: done, False: try again); a transient API error waits
    out its Retry-After and asks for another try instead of failing."""
    try:
        return await request
    except ApiException as error:
        if error.status not in TRANSIENT_STATUSES:
            raise
        delay = retry_after(error)
        log.warning("%s: %s; trying again in %gs", what, api_error_message(error), delay)
        await asyncio.sleep(delay)
        return False
