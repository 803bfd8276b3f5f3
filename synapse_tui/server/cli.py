"""`synapse-tui serve`: its arguments, and running uvicorn in the foreground."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from synapse_tui.server.config import DEFAULT_BODY_TIMEOUT, DEFAULT_EXPIRE_AFTER, ServerConfig
from synapse_tui.server.specs import parse_collection
from synapse_tui.units import parse_duration, parse_size  # the one parser of each

T = TypeVar("T")
TOKEN_ENV = "SYNAPSE_TUI_SERVE_TOKEN"


def _argtype(fn: Callable[[str], T]) -> Callable[[str], T]:
    def convert(text: str) -> T:
        try:
            return fn(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = fn.__name__.removeprefix("parse_")
    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `synapse-tui serve`."""
    parser.add_argument(
        "--bind", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port, 0 picks a free one (default %(default)s)"
    )
    parser.add_argument("--root", help="storage folder (default <data dir>/server)")
    parser.add_argument(
        "--token",
        action="append",
        help=f"access token (repeatable; env {TOKEN_ENV}); generated and printed when absent",
    )
    parser.add_argument(
        "--max-bytes",
        type=_argtype(parse_size),
        help="largest file accepted, e.g. 20G (default: no limit)",
    )
    parser.add_argument(
        "--expire-after",
        type=_argtype(parse_duration),
        default=DEFAULT_EXPIRE_AFTER,
        help="drop incomplete uploads this long after their last chunk (default 1d)",
    )
    parser.add_argument(
        "--body-timeout",
        type=_argtype(parse_duration),
        default=DEFAULT_BODY_TIMEOUT,
        help="answer 408 and free the upload when a request body sends nothing this long"
        " (default 60s)",
    )
    parser.add_argument(
        "--prefix", default="", help="URL path prefix of the API, e.g. /api (default: none)"
    )
    parser.add_argument(
        "--collection",
        action="append",
        type=_argtype(parse_collection),
        default=[],
        metavar="NAME:SPEC,...",
        help="data collection and its file specifications, each spec[*][?][:type]"
        " (* primary, ? optional; type image|video|audio|text|pcd|data), repeatable",
    )
    parser.add_argument(
        "--storage",
        metavar="s3://BUCKET[/PREFIX]",
        help="S3-compatible storage for presigned uploads (needs boto3; AWS_* credentials)",
    )
    parser.add_argument("--s3-endpoint", metavar="URL", help="endpoint of the S3 storage")
    parser.add_argument(
        "--multipart-threshold",
        type=_argtype(parse_size),
        help="presigned uploads above this size go multipart (default 100M)",
    )
    parser.add_argument(
        "--part-size", type=_argtype(parse_size), help="multipart part size (default 100M)"
    )


def _storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """The presigned-storage settings that were given (the rest keep their defaults)."""
    given = {
        "storage": getattr(args, "storage", None),
        "s3_endpoint": getattr(args, "s3_endpoint", None),
        "multipart_threshold": getattr(args, "multipart_threshold", None),
        "part_size": getattr(args, "part_size", None),
    }
    return {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    import uvicorn

    from synapse_tui import paths
    from synapse_tui.server.app import create_app
    from synapse_tui.server.runner import api_url, bind, is_loopback, uvicorn_config
    from synapse_tui.server.storage_s3 import StorageError
    from synapse_tui.server.store import RootBusyError

    tokens = list(args.token or [])
    if not tokens and os.environ.get(TOKEN_ENV):
        tokens = [os.environ[TOKEN_ENV]]
    generated = not tokens
    if generated:
        tokens = [secrets.token_urlsafe(32)]
    root = args.root or paths.data_dir() / "server"
    try:
        config = ServerConfig(
            root=root,
            tokens=tokens,
            max_bytes=args.max_bytes,
            expire_after=args.expire_after,
            prefix=args.prefix,
            collections=args.collection,
            body_timeout=args.body_timeout,
            **_storage_options(args),
        )
    except ValueError as exc:
        print(f"synapse-tui serve: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.bind):
        print(
            f"synapse-tui serve: warning: listening on {args.bind}, reachable from other "
            "machines over plain HTTP; use a TLS proxy or an SSH tunnel",
            file=sys.stderr,
        )
    try:
        sock = bind(args.bind, args.port)
    except OSError as exc:
        print(
            f"synapse-tui serve: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    try:
        app = create_app(config)
    except (RootBusyError, OSError, StorageError) as exc:
        sock.close()
        print(f"synapse-tui serve: {exc}", file=sys.stderr)
        return 1
    url = api_url(args.bind, sock.getsockname()[1], config.prefix)
    print(f"Serving the Synapse upload API at {url} (storage: {config.root})")
    if generated:
        print(f"Access token (shown once): {tokens[0]}")
        print(f"  export SYNAPSE_HOST={url} SYNAPSE_ACCESS_TOKEN={tokens[0]}")
    for line in app.state.backend.collections.describe():
        print(line)
    sys.stdout.flush()
    try:
        uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled gracefully
        pass
    finally:
        sock.close()
        app.state.backend.close()
    return 0
