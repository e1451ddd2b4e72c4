"""``promkit serve``: this process's /metrics over http(s), with an optional bearer token,
client certificates and Redis queue readings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import socket
import stat
import sys
from typing import TYPE_CHECKING

from promkit.tools._cli_usage import EXIT_USAGE, Subparsers, UsageError

if TYPE_CHECKING:
    from promkit.exporters import RedisQueueCollector

TOKEN_ENV = "PROMKIT_METRICS_TOKEN"
REDIS_URL_ENV = "PROMKIT_REDIS_URL"
DEFAULT_SERVE_PORT = 9464


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: must be 0 to 65535")
    return port


def add_serve(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve /metrics of this process (process, platform, GC and promkit metrics)",
        allow_abbrev=False,
        description=(
            "Serve the default registry (prometheus-client's REGISTRY with its process, "
            "platform and GC collectors, plus promkit's self-metrics) on "
            "http://HOST:PORT/metrics until SIGINT or SIGTERM. With PROMETHEUS_MULTIPROC_DIR "
            "set it serves the aggregated multiprocess metrics. A bearer token, if any, "
            f"comes from --token-file or the {TOKEN_ENV} environment variable. With "
            "--tls-cert it serves https; with --tls-client-ca (or --tls-client-ca-dir) "
            "scrapers must present a certificate signed by that CA."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=DEFAULT_SERVE_PORT,
                        help="port to listen on, 0 for any free port (default: %(default)s)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="file holding the bearer token scrapers must send "
                             f"(default: ${TOKEN_ENV}, else no token)")
    # A token given as an argument would show in `ps` and shell history: refuse
    # it by name, without echoing the value back.
    parser.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="serve https with this PEM certificate (intermediates after it)")
    tls.add_argument("--tls-key", metavar="FILE",
                     help="its unencrypted PEM private key (default: read from --tls-cert)")
    tls.add_argument("--tls-client-ca", metavar="FILE",
                     help="require client certificates signed by the CA certificates in "
                          "this PEM file")
    tls.add_argument("--tls-client-ca-dir", metavar="DIR",
                     help="the same, from a directory of CA certificates in OpenSSL's "
                          "hashed layout (openssl rehash)")
    parser.add_argument("--redis-url", metavar="URL",
                        help="Redis holding the --redis-queue queues (default: "
                             f"${REDIS_URL_ENV}; prefer it when the URL holds a password)")
    parser.add_argument("--redis-queue", metavar="SPEC", action="append", default=[],
                        help="also report a Redis queue's depth and age: list:KEY, "
                             "stream:KEY[:GROUP] or zset:KEY, with ?option=value "
                             "(repeatable; see docs/queues.md)")
    parser.add_argument("--redis-timeout", metavar="SECONDS", type=float, default=0.5,
                        help="per-scrape Redis read timeout (default: %(default)s)")
    parser.set_defaults(handler=_serve)


class _RefuseToken(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        parser.error(f"the token is not accepted on the command line (it would show in ps "
                     f"and shell history); use --token-file FILE or {TOKEN_ENV}")


def _read_token(path: str | None) -> str | None:
    if path is None:
        token = os.environ.get(TOKEN_ENV)
        if token is None:
            return None
        if not token.strip():
            raise UsageError(f"{TOKEN_ENV} is set but empty; unset it to serve without a token")
        return token.strip()
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            token = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read --token-file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {path!r} is not UTF-8 text") from None
    token = token.strip()
    if not token:
        raise UsageError(f"--token-file {path!r} is empty")
    if "\n" in token or "\r" in token:
        raise UsageError(f"--token-file {path!r} holds more than one line")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # Serve anyway (the file may be on a read-only mount) but say so.
        print(f"promkit: warning: --token-file {path!r} is readable by other users",
              file=sys.stderr)
    return token


def _check_tls_flags(args: argparse.Namespace) -> bool:
    """Check the --tls-* flags' combination (the files are checked when the server
    starts); True when client certificates are required."""
    if args.tls_cert is None:
        for flag in ("tls_key", "tls_client_ca", "tls_client_ca_dir"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} needs --tls-cert")
        return False
    key = args.tls_key if args.tls_key is not None else args.tls_cert
    with contextlib.suppress(OSError):  # an unreadable file is reported when it is loaded
        if os.stat(key).st_mode & (stat.S_IRGRP | stat.S_IROTH):
            flag = "--tls-key" if args.tls_key is not None else "--tls-cert"
            print(f"promkit: warning: {flag} {key!r} (the private key) is readable by "
                  "other users", file=sys.stderr)
    return args.tls_client_ca is not None or args.tls_client_ca_dir is not None


def _serve(args: argparse.Namespace) -> int:
    from promkit.exporters import serve_metrics

    token = _read_token(args.token_file)
    client_auth = _check_tls_flags(args)
    queues = _redis_queues(args)
    notes = [*(["bearer token required"] if token else []),
             *(["client certificate required"] if client_auth else [])]

    def started(url: str) -> None:
        print(f"promkit: serving metrics on {url}" + (f" ({', '.join(notes)})" if notes else "")
              + (f" with {len(queues.specs)} Redis queue(s)" if queues else ""), flush=True)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve_metrics(args.host, args.port, token=token, on_started=started,
                                certfile=args.tls_cert, keyfile=args.tls_key,
                                client_cafile=args.tls_client_ca,
                                client_capath=args.tls_client_ca_dir,
                                client_auth_required=client_auth)

    try:
        asyncio.run(run())
    except ValueError as exc:
        # A TLS file that is missing, unreadable, not PEM, encrypted or not matching,
        # found before the port is bound.
        raise UsageError(str(exc)) from None
    except OSError as exc:
        # An unknown or non-local address is a bad argument (2); a busy port or
        # a missing permission is a failure to start (1).
        bad_address = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
        print(f"promkit: error: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE if bad_address else 1
    finally:
        if queues is not None:
            queues.close()
    print("promkit: stopped", flush=True)
    return 0


def _redis_queues(args: argparse.Namespace) -> RedisQueueCollector | None:
    """The queue collector of ``--redis-queue``, registered on the default registry."""
    url = args.redis_url or os.environ.get(REDIS_URL_ENV)
    if not args.redis_queue:
        if args.redis_url:
            raise UsageError("--redis-url given without any --redis-queue SPEC")
        return None
    if not url:
        raise UsageError(f"--redis-queue needs --redis-url URL (or {REDIS_URL_ENV})")
    if not 0 < args.redis_timeout <= 30:
        raise UsageError(f"--redis-timeout must be in (0, 30] seconds, not {args.redis_timeout}")
    from promkit.instrument.registry import default_registry, multiprocess_dir

    if multiprocess_dir() is not None:
        raise UsageError("--redis-queue cannot be served with PROMETHEUS_MULTIPROC_DIR set "
                         "(multiprocess output holds only the processes' files); run a "
                         "separate `promkit serve --redis-queue ...` without it")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise UsageError("--redis-queue needs the redis package: pip install 'promkit[redis]'"
                         ) from None
    from promkit.exporters import RedisQueueCollector
    from promkit.instrument.queues import QueueSpecError

    try:
        return RedisQueueCollector(url, args.redis_queue, timeout=args.redis_timeout,
                                   registry=default_registry())
    except (QueueSpecError, ValueError) as exc:
        # ValueError covers a malformed URL; its text never holds the password.
        raise UsageError(str(exc)) from None
