"""A bare ASGI pass-through proxy with a choice of HTTP client, for compare_http_clients.py.

Not the gateway: no auth, no metering. It isolates what the upstream client costs.
``PROBE_CLIENT`` = aiohttp | httpx, ``PROBE_UPSTREAM`` = the simulator's URL.
"""

import os

UPSTREAM = os.environ.get("PROBE_UPSTREAM", "http://127.0.0.1:9100")
CLIENT = os.environ.get("PROBE_CLIENT", "aiohttp")
FORWARD = (b"content-type", b"request-id")


async def read_all(receive):
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class AiohttpProxy:
    session = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            import aiohttp

            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=None),
                        auto_decompress=False,
                    )
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await read_all(receive)
        headers = {"x-api-key": "sk-probe", "content-type": "application/json"}
        async with self.session.post(UPSTREAM + scope["path"], data=body, headers=headers) as r:
            out = [(k, v) for k, v in r.raw_headers if k.lower() in FORWARD]
            await send({"type": "http.response.start", "status": r.status, "headers": out})
            async for chunk in r.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


class HttpxProxy:
    client = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            import httpx

            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.client = httpx.AsyncClient(
                        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
                    )
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await self.client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await read_all(receive)
        headers = {"x-api-key": "sk-probe", "content-type": "application/json"}
        request = self.client.build_request(
            "POST", UPSTREAM + scope["path"], content=body, headers=headers
        )
        r = await self.client.send(request, stream=True)
        try:
            out = [(k, v) for k, v in r.headers.raw if k.lower() in FORWARD]
            await send({"type": "http.response.start", "status": r.status_code, "headers": out})
            async for chunk in r.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await r.aclose()


app = AiohttpProxy() if CLIENT == "aiohttp" else HttpxProxy()
