"""A Redis stand-in for `make run`: fakeredis served over TCP, one process for all web workers.

    python -m console.standin_redis --port 6390

`make run` must work on a machine with only Python, yet its several uvicorn workers have to share
one hot path: a key revoked in one worker must stop working in the others (pub/sub), a monthly cap
must count every worker's spend (one counter), and the usage stream must be one stream. An
in-process fakeredis per worker shares none of that; this process serves one fakeredis to all of
them over the Redis protocol, so the console talks to it exactly as to a real Redis (`REDIS_URL`).
Nothing is kept on disk: stopping `make run` forgets it, as `--save ""` would.

Production and the tests use a real Redis; this is only for the single-machine demo.
"""

from __future__ import annotations

import argparse
import signal
import sys


def _server_class():
    import redis
    from fakeredis import TcpFakeServer
    from fakeredis._clients._tcp_server import TCPFakeRequestHandler

    class Handler(TCPFakeRequestHandler):
        """fakeredis 2.40 closes the connection after any error reply (BUSYGROUP, NOSCRIPT, ...),
        where Redis answers the error and goes on: the next command on that pooled connection
        then fails. Hand command errors to the writer as replies instead of raising them."""

        def setup(self) -> None:
            super().setup()
            read_response = self.current_client.read_response

            def read_reply(**kwargs):
                try:
                    return read_response(**kwargs)
                except (redis.ResponseError, redis.AuthenticationError) as error:
                    return error  # encoded as an error reply; the connection stays open

            self.current_client.read_response = read_reply

    class Server(TcpFakeServer):
        request_queue_size = 128  # socketserver's 5 refuses a burst of pooled connections

        def __init__(self, address, **kwargs) -> None:
            super().__init__(address, bind_and_activate=False, **kwargs)
            self.RequestHandlerClass = Handler
            self.daemon_threads = True  # a connection's thread never holds up the exit
            try:
                self.server_bind()
                self.server_activate()
            except OSError:
                self.server_close()
                raise

    return Server


def main(argv: list[str] | None = None) -> None:
    TcpFakeServer = _server_class()

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6390)
    args = parser.parse_args(argv)

    server = TcpFakeServer((args.host, args.port), server_type="redis")

    def stop(*_):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"Redis stand-in (fakeredis) on redis://{args.host}:{args.port}/0", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
