"""The floor: an ASGI app that only receives the request, parses it with orjson and answers
``{"cards": []}``. It runs under the same uvicorn settings as the real service, so the ratio
real/floor is the cost of everything the service does beyond reading its input.
"""

from __future__ import annotations

from typing import Any

import orjson

EMPTY = orjson.dumps({"cards": []})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(EMPTY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if body:
        orjson.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": EMPTY})
