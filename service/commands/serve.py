"""``liver-cds serve [--host H] [--port P] [--workers N]``: run the service under uvicorn.

uvicorn with uvloop and httptools (the fastest pure-Python-server combination), through
:class:`service.httpserver.BoundedHttpToolsProtocol`, which bounds each request's head in
size (``LIVER_CDS_MAX_HEADER_BYTES``, 431) and time (``LIVER_CDS_HEADER_TIMEOUT_S``); the
defaults come from ``LIVER_CDS_HOST``, ``LIVER_CDS_PORT`` and ``LIVER_CDS_WORKERS``.
With one worker the app is built here and handed to uvicorn; with more, uvicorn's
supervisor starts each worker process from the import string
``service.app:create_app_from_env`` (an app object cannot cross a process boundary), and
each worker reads the same ``LIVER_CDS_*`` environment (``--host`` and ``--port`` are put
into it as ``LIVER_CDS_HOST`` and ``LIVER_CDS_PORT`` for them).

Unless ``LIVER_CDS_PUBLIC_URL`` is set, the public URL follows the host and port served
(``liver-cds serve --port 9000``: ``http://127.0.0.1:9000``; see
:func:`service.settings.default_public_url`).

SIGTERM/SIGINT: uvicorn stops accepting connections, lets in-flight requests finish (up
to :data:`GRACEFUL_SHUTDOWN_S`), then runs the app's lifespan shutdown, which closes the
FHIR clients and the store (writing every queued audit record).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

GRACEFUL_SHUTDOWN_S = 10
"""How long a stopping server waits for in-flight calls (a call's budget is 3 s by default)."""

KEEP_ALIVE_S = 75
"""How long an idle HTTP connection is kept open (uvicorn's default is 5 s).

Longer than the idle timeout of the load balancers and clients in front of the service
(60 s is common): the side that closes an idle connection must be the client, or a request
sent just as the server closes it fails with a reset (a 502 at the load balancer). The
soak run saw exactly that once with the 5 s default."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to bind (default: LIVER_CDS_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="TCP port to listen on (default: LIVER_CDS_PORT, 8000)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: LIVER_CDS_WORKERS, 1)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from service.httpserver import BoundedHttpToolsProtocol, HeadLimits
    from service.observability import uvicorn_log_config
    from service.settings import PREFIX, Settings, SettingsError, default_public_url

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"liver-cds: {exc}", file=sys.stderr)
        return 2
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers if args.workers is not None else settings.workers
    if not 0 < port < 65536:
        print(f"liver-cds: port must be between 1 and 65535, not {port}", file=sys.stderr)
        return 2
    if workers < 1:
        print(f"liver-cds: workers must be at least 1, not {workers}", file=sys.stderr)
        return 2

    changes: dict[str, Any] = {"host": host, "port": port}
    if not os.environ.get(PREFIX + "PUBLIC_URL", "").strip():
        changes["public_url"] = default_public_url(host, port)
    settings = dataclasses.replace(settings, **changes)
    if workers > 1:  # each worker builds its settings from the environment it inherits
        os.environ[PREFIX + "HOST"] = host
        os.environ[PREFIX + "PORT"] = str(port)

    BoundedHttpToolsProtocol.limits = HeadLimits.from_settings(settings)
    target: Any
    if workers > 1:
        target = "service.app:create_app_from_env"
    else:
        from service.app import create_app

        target = create_app(settings, serving_process=True)
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=host,
        port=port,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        lifespan="on",
        log_config=uvicorn_log_config(settings),
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return 0
