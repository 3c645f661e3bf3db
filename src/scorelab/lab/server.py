"""The lab's web server: the standard library's threading HTTP server, a JSON API and one static page.

Routes (all local; plotly's JavaScript comes from the installed plotly package, so nothing is fetched
from the internet):

    GET  /                       the page (static/index.html)
    GET  /static/lab.js          its script
    GET  /static/plotly.min.js   plotly.offline.get_plotlyjs()
    GET  /api/presets            [{name, description}]
    GET  /api/knobs?preset=P     the preset's knobs: path, section, label, kind, value, min, max, step
    POST /api/view               {preset, population, days, seed, changes: {path: value}} -> both runs' figures
    POST /api/save               the same and {out}: writes the changed view as a run directory + TOML

A bad request is answered 400 with {"error", "field", "message", "allowed"}; nothing answers with a
traceback. The server listens on 127.0.0.1 only, accepts only Host headers naming this machine (against DNS
rebinding) and POSTs only as application/json (a page elsewhere cannot post that without a CORS preflight,
which this server never grants).
"""

from __future__ import annotations

import errno
import json
import sys
import threading
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..config.loader import ConfigError
from .knobs import LabError
from .views import Lab

MAX_BODY = 1_000_000
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/static/lab.js": ("lab.js", "text/javascript; charset=utf-8"),
          "/static/lab.css": ("lab.css", "text/css; charset=utf-8")}


@lru_cache(maxsize=None)
def _static(name: str) -> bytes:
    return (resources.files("scorelab.lab") / "static" / name).read_bytes()


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    server: "LabServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            sys.stderr.write("lab: " + (format % args) + "\n")

    # ---------------------------------------------------------------- replies

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, allow_nan=False, default=_plain).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _error(self, status: int, field: str, message: str, allowed: str = "") -> None:
        self._json(status, LabError(field, message, allowed).as_json())

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host in ("127.0.0.1", "localhost", "::1", ""):
            return True
        self._error(HTTPStatus.FORBIDDEN, "Host", f"{host!r} is not this machine", "127.0.0.1 or localhost")
        return False

    # ---------------------------------------------------------------- routes

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        try:
            if url.path in STATIC:
                name, ctype = STATIC[url.path]
                self._send(200, _static(name), ctype)
            elif url.path == "/static/plotly.min.js":
                self._send(200, _plotly_js(), "text/javascript; charset=utf-8", cache=True)
            elif url.path == "/api/presets":
                self._json(200, {"presets": self.server.lab.preset_list(), "default": self.server.default_preset})
            elif url.path == "/api/knobs":
                preset = parse_qs(url.query).get("preset", [None])[0]
                self._json(200, self.server.lab.knobs(preset))
            elif url.path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                self._error(404, "path", f"{url.path} is not a page of the lab", "/, /api/presets, /api/knobs?preset=P")
        except LabError as e:
            self._json(400, e.as_json())
        except ConfigError as e:
            self._error(400, e.field or "preset", e.message)
        except Exception as e:  # noqa: BLE001 - a bug answers 500 with one line, never a traceback
            self._fail(e)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        if url.path not in ("/api/view", "/api/save"):
            self._error(404, "path", f"{url.path} does not take POST", "/api/view, /api/save")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(415, "Content-Type", f"{ctype or 'none'} is not accepted", "application/json")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._error(400, "body", "missing or too large", f"a JSON object of at most {MAX_BODY:,} bytes")
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self._error(400, "body", f"not JSON ({e})", "a JSON object")
            return
        try:
            lab = self.server.lab
            self._json(200, lab.view(body) if url.path == "/api/view" else lab.save(body))
        except LabError as e:
            self._json(400, e.as_json())
        except ConfigError as e:
            self._error(400, e.field or "changes", e.message)
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def _fail(self, e: Exception) -> None:
        sys.stderr.write(f"lab: internal error on {self.command} {self.path}: {type(e).__name__}: {e}\n")
        self._error(500, "server", f"internal error: {type(e).__name__}: {e}")


def _plain(x: Any) -> Any:
    """numpy scalars in JSON; NaN/inf become null."""
    import math

    try:
        v = x.item()
    except AttributeError:
        raise TypeError(f"{type(x).__name__} is not JSON serialisable") from None
    return None if isinstance(v, float) and not math.isfinite(v) else v


class LabServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must be reported, not shared

    def __init__(self, port: int, lab: Lab, default_preset: str, verbose: bool = False):
        self.lab, self.default_preset, self.verbose = lab, default_preset, verbose
        super().__init__(("127.0.0.1", port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


def make_server(port: int = 8765, preset: str = "rongcheng", lab: Lab | None = None, verbose: bool = False) -> LabServer:
    """A bound (not yet serving) lab server; ConfigError for an unknown preset or a port in use."""
    lab = lab or Lab()
    if preset not in lab.presets:
        raise ConfigError(preset, None, f"not a preset; presets are: {', '.join(lab.presets)}")
    if not 0 <= port <= 65535:
        raise ConfigError("--port", None, f"{port} is not allowed; give a port from 1 to 65535 (0: any free port)")
    try:
        return LabServer(port, lab, preset, verbose)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError("--port", None, f"port {port} is in use; choose another (e.g. --port {port + 1}) "
                                              "or --port 0 for any free port") from None
        if e.errno == errno.EACCES:
            raise ConfigError("--port", None, f"port {port} needs privileges; use one above 1023") from None
        raise ConfigError("--port", None, f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None


def serve_in_thread(server: LabServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, name="scorelab-lab", daemon=True)
    t.start()
    return t
