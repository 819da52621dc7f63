"""How the hub's services stop: on SIGINT (what the hub sends a managed service it stops, and
what Ctrl-C sends a terminal's foreground processes) or SIGTERM, with one log line and no
KeyboardInterrupt traceback."""

from __future__ import annotations

import asyncio
import logging
import signal

from tornado import ioloop

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(log: logging.Logger) -> None:
    """From now on SIGINT and SIGTERM stop the current IOLoop; call before starting it."""
    loop: asyncio.AbstractEventLoop = ioloop.IOLoop.current().asyncio_loop  # type: ignore[attr-defined]

    def stop(sig: signal.Signals) -> None:
        log.info("%s received, stopping", sig.name)
        loop.stop()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
