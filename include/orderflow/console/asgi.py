"""The ASGI entry the Airflow plugin registers: the console app is built on its first request.

Airflow imports plugins in every component (scheduler, dag-processor, triggerer, workers); building
the FastAPI app only when the API server first routes a request to it keeps those imports cheap
and free of the API server's security modules.
"""

from __future__ import annotations

import threading
from typing import Any


class LazyConsoleApp:
    """An ASGI app that builds :func:`orderflow.console.app.create_app` once, on first use."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from orderflow.console.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self._get()(scope, receive, send)


console_app = LazyConsoleApp()
