"""`synapse-tui serve`: arguments, size/duration parsing, and running uvicorn in the foreground."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from synapse_tui.server.config import DEFAULT_EXPIRE_AFTER, ServerConfig

T = TypeVar("T")
TOKEN_ENV = "SYNAPSE_TUI_SERVE_TOKEN"
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `10M`, `1.5G`, `2TiB` -> bytes (powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid size {text!r}: use bytes or a K/M/G/T suffix, e.g. 10G")
    number, unit = match.groups()
    if "." in number and not unit:
        raise ValueError(f"invalid size {text!r}: a byte count is a whole number")
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def parse_duration(text: str) -> float:
    """`90`, `30s`, `15m`, `12h`, `1.5d` -> seconds (must be positive)."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use seconds or an s/m/h/d suffix, e.g. 12h")
    number, unit = match.groups()
    seconds = float(number) * _DURATION_UNITS[unit.lower()]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be more than zero")
    return seconds


def parse_collection(text: str) -> tuple[str, list[str]]:
    """`images:image,meta` -> ("images", ["image", "meta"])."""
    name, sep, rest = text.partition(":")
    specs = [s.strip() for s in rest.split(",") if s.strip()]
    if not sep or not name.strip() or not specs or len(set(specs)) != len(specs):
        raise ValueError(f"invalid collection {text!r}: use NAME:spec1,spec2 (distinct specs)")
    return name.strip(), specs


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
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0 picks a free one)")
    parser.add_argument("--root", help="storage folder (default: <data dir>/server)")
    parser.add_argument(
        "--token",
        action="append",
        help=f"access token (repeatable; env {TOKEN_ENV}); generated and printed when absent",
    )
    parser.add_argument(
        "--max-bytes", type=_argtype(parse_size), help="largest file accepted, e.g. 20G"
    )
    parser.add_argument(
        "--expire-after",
        type=_argtype(parse_duration),
        default=DEFAULT_EXPIRE_AFTER,
        help="drop incomplete uploads this long after their last chunk (default 1d)",
    )
    parser.add_argument("--prefix", default="", help="URL path prefix of the API, e.g. /api")
    parser.add_argument(
        "--collection",
        action="append",
        type=_argtype(parse_collection),
        default=[],
        metavar="NAME:SPEC,...",
        help="data collection with its file specifications (repeatable)",
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
    sys.stdout.flush()
    try:
        uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled gracefully
        pass
    finally:
        sock.close()
        app.state.backend.close()
    return 0
