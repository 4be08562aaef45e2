"""DrainUnreadBody's two bounds, driven through plain ASGI calls (the real-server test with
urllib is tests/security/test_body_drain.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from service.protocol.drain import DRAIN_FACTOR, DrainUnreadBody

LIMIT = 1000


async def refuse_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    """An application that answers 413 without reading the body."""
    await send({"type": "http.response.start", "status": 413, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def scope(
    content_length: int | None, *, expect_continue: bool = False, chunked: bool = False
) -> Scope:
    headers = []
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    if expect_continue:
        headers.append((b"expect", b"100-continue"))
    return {"type": "http", "method": "POST", "path": "/", "headers": headers}


class Client:
    """Sends ``chunks`` of body, one per receive(), waiting ``delay_s`` before each."""

    def __init__(self, chunks: list[bytes], delay_s: float = 0.0) -> None:
        self.chunks = chunks
        self.delay_s = delay_s
        self.read = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        await asyncio.sleep(self.delay_s)
        if self.read >= len(self.chunks):
            return {"type": "http.disconnect"}
        body = self.chunks[self.read]
        self.read += 1
        return {"type": "http.request", "body": body, "more_body": self.read < len(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def closes(self) -> bool:
        start = self.sent[0]
        return (b"connection", b"close") in list(start.get("headers", []))


async def run(client: Client, asgi_scope: Scope, **options: Any) -> None:
    app = DrainUnreadBody(refuse_at_once, max_body_bytes=LIMIT, **options)
    await app(asgi_scope, client.receive, client.send)


async def test_a_body_within_the_bound_is_read_to_its_end_before_the_answer() -> None:
    chunks = [b"x" * 500] * (DRAIN_FACTOR * LIMIT // 500)
    client = Client(chunks)
    await run(client, scope(sum(map(len, chunks))))
    assert client.read == len(chunks)
    assert client.sent[0]["status"] == 413 and not client.closes()


async def test_a_body_past_the_byte_bound_is_left_and_the_connection_closed() -> None:
    chunks = [b"x" * 500] * (DRAIN_FACTOR * LIMIT // 500 + 4)
    client = Client(chunks)
    await run(client, scope(None, chunked=True))  # no declared length to judge by
    assert client.read <= DRAIN_FACTOR * LIMIT // 500 + 1
    assert client.closes()


async def test_a_declared_length_past_the_bound_is_not_read_at_all() -> None:
    client = Client([b"x" * 500] * 100)
    await run(client, scope(50 * LIMIT))
    assert client.read == 0 and client.closes()


async def test_a_trickling_body_is_given_up_at_the_time_bound() -> None:
    client = Client([b"x"] * 1000, delay_s=0.05)
    await run(client, scope(1000), timeout_s=0.2)
    assert 0 < client.read < 10
    assert client.closes()


async def test_an_expect_100_continue_client_is_not_asked_for_its_body() -> None:
    client = Client([b"x" * 500] * 4)
    await run(client, scope(2000, expect_continue=True))
    assert client.read == 0 and client.closes()


async def test_a_request_without_a_body_passes_untouched() -> None:
    client = Client([])
    await run(client, scope(None))
    assert client.read == 0 and not client.closes()
