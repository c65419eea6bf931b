"""Anthropic upstream simulator: a fast, deterministic stand-in for api.anthropic.com.

Serves the Messages API wire format (JSON and SSE), count_tokens and the models list, with
deterministic usage numbers and injectable failures, for tests, benchmarks and the offline demo.
Run it with ``python -m gateway.simulator --port 9100``; import :data:`app` (or build a
:class:`Simulator`) to mount it in-process. It has no Django dependency and must stay that way:
benchmarks start it as a bare uvicorn process.

See :mod:`gateway.simulator.app` for the header and behaviour contract and
:mod:`gateway.simulator.tokens` for the token formulas.
"""

from .app import Simulator, app

__all__ = ["Simulator", "app"]
