"""Real servers for the gateway tests: uvicorn in a background thread on a free port."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


def serve_in_thread(app, **config) -> RunningServer:
    sock = free_socket()
    config.setdefault("log_level", "critical")
    # Idle connections are kept longer than the gateway's upstream pool keeps them (30 s): with
    # uvicorn's default of 5 s, a pooled connection reused just as the simulator closed it failed
    # a request with ClientOSError (502) now and then in the full suite.
    config.setdefault("timeout_keep_alive", 75)
    config.setdefault("lifespan", "on")
    server = uvicorn.Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    host, port = sock.getsockname()
    return RunningServer(f"http://{host}:{port}", server, thread, sock)
