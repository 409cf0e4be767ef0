"""Run the demo target: ``python -m pytest_swarm.demo``.

Serves :data:`pytest_swarm.demo.app.app` with :class:`gevent.pywsgi.WSGIServer`
(keep-alive on, backlog 1024, no access log). The process does not
monkey-patch: the application only uses :func:`gevent.sleep`.

Once listening it prints one line, ``pytest-swarm demo target listening on
http://HOST:PORT``, and, with ``--port-file PATH``, atomically writes the port
to *PATH* (temporary file + rename) so a parent process can wait for that file
instead of sleeping. SIGTERM and SIGINT stop it cleanly with exit status 0.

Example:
    .. code-block:: console

        $ python -m pytest_swarm.demo --port 0 --port-file /tmp/demo.port
        pytest-swarm demo target listening on http://127.0.0.1:41235
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from pytest_swarm.demo.app import DemoHandler, app

__all__ = ["BACKLOG", "DEFAULT_HOST", "DEFAULT_PORT", "main", "write_port_file"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8089
BACKLOG = 1024
_STOP_GRACE_SECONDS = 2.0
_PARENT_POLL_SECONDS = 1.0
_WANTED_NOFILE = 65_536


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_swarm.demo",
        description="Run the pytest-swarm demo target service (gevent WSGI).",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--port-file",
        metavar="PATH",
        help="once listening, atomically write the bound port to PATH",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        metavar="PID",
        help="exit when this process is no longer our parent (used by DemoServer)",
    )
    return parser.parse_args(argv)


def write_port_file(path: str, port: int) -> None:
    """Atomically write *port* (and a newline) to *path*: temporary file, then rename.

    A reader that sees *path* therefore always sees the whole port.

    Example:
        >>> import os, tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "port")
        >>> write_port_file(target, 8089)
        >>> open(target).read()
        '8089\\n'
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"{port}\n")
    os.replace(tmp, path)


def _raise_nofile_limit() -> None:
    """Raise the soft open-files limit so thousands of connections fit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = _WANTED_NOFILE if hard == resource.RLIM_INFINITY else min(hard, _WANTED_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # pragma: no cover - best effort
        pass


def _watch_parent(parent_pid: int, stop: Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            return
        stop.wait(_PARENT_POLL_SECONDS)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo target until SIGTERM/SIGINT; return the exit status.

    Example:
        >>> main(["--port", "0", "--port-file", "/tmp/demo.port"])  # doctest: +SKIP
        pytest-swarm demo target listening on http://127.0.0.1:41235
        0
    """
    args = _parse_args(argv)
    _raise_nofile_limit()
    server = WSGIServer(
        (args.host, args.port),
        app,
        backlog=BACKLOG,
        log=None,
        handler_class=DemoHandler,
    )
    server.start()
    stop = Event()
    handlers = [gevent.signal_handler(signum, stop.set) for signum in _stop_signals()]
    try:
        host, port = server.address[0], int(server.address[1])
        if args.port_file:  # before the banner: whoever sees the line can read the file
            write_port_file(args.port_file, port)
        print(
            f"pytest-swarm demo target listening on http://{_url_host(host)}:{port}",
            flush=True,
        )
        if args.parent_pid is not None:
            gevent.spawn(_watch_parent, args.parent_pid, stop)
        stop.wait()
    finally:
        for handler in handlers:
            handler.cancel()
        server.stop(timeout=_STOP_GRACE_SECONDS)
    return 0


def _stop_signals() -> list[signal.Signals]:
    signals = [signal.SIGINT]
    if hasattr(signal, "SIGTERM"):
        signals.append(signal.SIGTERM)
    return signals


if __name__ == "__main__":
    sys.exit(main())
