"""LocalServer: a threaded HTTP server on 127.0.0.1 whose handler class sees the stand-in, as a context manager."""

from __future__ import annotations

import http.server
import socketserver
import threading

__all__ = ["LocalServer", "ThreadingServer"]


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # many clients connect at once; the default backlog (5) drops connections


class LocalServer:
    """Base of the stand-ins: ``start()`` serves ``handler`` (which reads ``self.standin``) until ``stop()``."""

    _server: ThreadingServer | None = None
    _thread: threading.Thread | None = None

    def _serve(self, handler: type, port: int = 0, name: str = "standin"):
        bound = type(f"_Bound{handler.__name__.lstrip('_')}", (handler,), {"standin": self})
        self._server = ThreadingServer(("127.0.0.1", port), bound)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
