"""Load the model once, bind the socket, and run uvicorn until Ctrl-C or SIGTERM (uvicorn's own graceful stop)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from vlmcli.errors import DependencyError, UsageError
from vlmcli.progress import Progress
from vlmcli.serve.config import ServeSpec

INSTALL_HINT = "pip install 'vlmcli[serve]'"
REQUIRED = (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("multipart", "python-multipart"),
            ("prometheus_client", "prometheus-client"))


def serve(spec: ServeSpec, progress: Progress, on_ready: Callable[[str], None]) -> None:
    """Serve until stopped; `on_ready` hears the page's URL once the socket is bound and the model loaded."""
    spec.check()
    check_installed()
    from vlmcli import model

    sock = bind(spec.host, spec.port)  # before the model loads: a busy port costs no minutes
    progress.loading_model(spec.run.model.model_id)
    loaded = model.load(spec.run.model, spec.run.split)
    progress.model_loaded()

    import uvicorn

    from vlmcli.serve.app import create_app
    from vlmcli.serve.service import Service

    service = Service(spec, loaded)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(create_app(service), log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    on_ready(f"http://{shown}:{port}/")
    uvicorn.Server(config).run(sockets=[sock])


def check_installed() -> None:
    """Exit 6 with the install hint when the extra is missing (before the model loads)."""
    import importlib.util

    missing = [package for module, package in REQUIRED if importlib.util.find_spec(module) is None]
    if missing:
        raise DependencyError(f"vlmcli serve needs {', '.join(missing)}, not installed", hint=INSTALL_HINT)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"{host}:{port} is in use", hint="pick another --port") from None
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
