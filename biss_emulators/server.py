"""Run a Starlette app with uvicorn on a background thread, bound to loopback only."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def ensure_loopback(host: str, allow_non_loopback: bool = False) -> None:
    """Refuse to expose an emulator (and its synthetic patient data) beyond this machine."""
    if allow_non_loopback or host in LOOPBACK_HOSTS:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"emulators bind to loopback only; {host!r} is not a loopback address")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """An ASGI app served by uvicorn on its own thread.

    `start()` returns once the socket accepts connections; `stop()` closes it, after
    which connections are refused (the emulators use that for outage windows).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None,
                 allow_non_loopback: bool = False) -> None:
        ensure_loopback(host, allow_non_loopback)
        self.app = app
        self.host = host
        self.port = port or 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        if self._server is not None:
            return self
        # Bind here rather than in uvicorn: picking a free port and binding it later races with
        # other processes on the machine; a socket we hold cannot be taken in between.
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(2048)
        self.port = int(listener.getsockname()[1])
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning",
            access_log=False, lifespan="off", timeout_keep_alive=30, backlog=2048,
        )
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread; ours is not.
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]},
                                  name=f"emulator-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                listener.close()
                raise RuntimeError(f"emulator failed to start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"emulator did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, listener
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def serve_forever(self) -> None:
        """Foreground mode for the CLI: blocks until interrupted."""
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="info",
                                lifespan="off")
        uvicorn.Server(config).run()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
