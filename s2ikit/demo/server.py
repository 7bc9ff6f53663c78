"""Start the demo page on a host and port, say where to open it, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2ikit.utils.errors import UserError

CONCURRENCY = 2  # requests drawn at once; more wait in Gradio's queue (the page shows their place in it)
MAX_UPLOAD = "20mb"  # a minute of 16-bit stereo at 48 kHz is 11 MB


def start(run: str | Path, host: str, port: int) -> Any:
    """Load the run and serve its page in background threads; returns the Gradio app (`.close()` stops it)."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("s2ikit demo needs Gradio: pip install 's2ikit[demo]'") from None
    from s2ikit.demo.app import CSS, build_app
    from s2ikit.demo.backend import load

    app = build_app(load(run))
    app.queue(default_concurrency_limit=CONCURRENCY)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            css=CSS,
            ssr_mode=False,
            max_file_size=MAX_UPLOAD,
            footer_links=[],
        )
    except OSError as e:
        if "empty port" in str(e):  # Gradio's words for a port another program holds
            raise UserError(f"--port {port}: already in use on {host}; choose another port") from None
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e})") from None
    return app


def serve(run: str | Path, host: str, port: int, log: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C."""
    app = start(run, host, port)
    # From here on a Ctrl-C closes the app wherever it lands, the printing of the address included: the server's
    # threads are not daemons, so an interrupt that escaped before `close` would leave the process running.
    try:
        if host in ("0.0.0.0", "::"):
            log(f"s2ikit demo listening on every interface, port {port}")
            log(
                f"from your own computer: ssh -N -L {port}:localhost:{port} USER@THIS_MACHINE, then open http://localhost:{port}"
            )
        else:
            shown = f"[{host}]" if ":" in host else host  # an IPv6 address goes in brackets in a URL
            log(f"s2ikit demo: open http://{shown}:{port} in a browser")
        log("Ctrl-C stops it")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        app.close()
    log("stopped")
