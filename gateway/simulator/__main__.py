"""``python -m gateway.simulator``: serve the simulator with uvicorn.

Uses uvloop and httptools when they are installed (uvicorn[standard]), the access log is off: this
process is the fast fake upstream of the gateway benchmark and must not be its bottleneck.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import Any


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.simulator",
        description="Anthropic Messages API simulator (a stand-in upstream for tests and benches).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=float(os.environ.get("SIM_LATENCY_MS") or 0),
        help="delay before every answer (default: $SIM_LATENCY_MS or 0)",
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    from gateway.simulator.app import Simulator

    if args.workers > 1:
        # Workers are fresh processes that import the app themselves: hand the latency over through
        # the environment that Simulator.from_env() reads when gateway.simulator.app is imported.
        os.environ["SIM_LATENCY_MS"] = str(args.latency_ms)
        target: Any = "gateway.simulator.app:app"
    else:
        # This process imported gateway.simulator.app (and built its `app`) before parsing the
        # arguments, so build the instance with the requested latency here.
        target = Simulator(latency_ms=args.latency_ms)
    uvicorn.run(
        target,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop" if _installed("uvloop") else "asyncio",
        http="httptools" if _installed("httptools") else "h11",
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
        backlog=4096,
        # Longer than the gateway's upstream pool keeps an idle connection (30 s), so the gateway
        # never reuses a connection the simulator is closing.
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
