"""The sandbox framework: a threaded HTTP server that fakes one system's real API.

Each system subclasses `SandboxApp`, declares its routes with `self.route(...)`, its own auth,
error shape and rate limiter, and fills its `Table`s from the shared seed world. This module
adds what every fake system has in common and that the real APIs do not serve: the control API
under `/_sandbox/` (reset, request counters, fault injection, clock), so tests and benchmarks can
drive the servers without touching their real paths.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("talk_assets.sandbox")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTROL_TOKEN_ENV = "TALK_SANDBOX_CONTROL_TOKEN"
CONTROL_TOKEN_HEADER = "X-Sandbox-Control-Token"


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.0.0.1)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def control_refusal(client: str, given_token: str | None, token: str | None) -> str | None:
    """Why the control API (reset, faults, clock...) refuses this caller, or None when it may use it.

    From loopback it is always open (the tests and `talk-assets run` drive it from this machine).
    From any other interface it needs `TALK_SANDBOX_CONTROL_TOKEN` set on the server and the same
    value in the `X-Sandbox-Control-Token` header: a sandbox bound to 0.0.0.0 must not let anyone on
    the network wipe or sabotage it.
    """
    if is_loopback(client):
        return None
    if not token:
        return (f"the sandbox control API answers only on loopback; set {CONTROL_TOKEN_ENV} on the "
                f"sandbox and send it in the {CONTROL_TOKEN_HEADER} header to use it from elsewhere")
    if not given_token or not hmac.compare_digest(given_token.encode(), token.encode()):
        return f"wrong or missing {CONTROL_TOKEN_HEADER} header (the value of {CONTROL_TOKEN_ENV})"
    return None


class Request:
    """A parsed request as handlers see it."""

    def __init__(self, method: str, target: str, headers: Any, body: bytes, client: str = "127.0.0.1") -> None:
        parts = urlsplit(target)
        self.client = client  # the peer's IP address
        self.method = method
        self.path = parts.path
        self.raw_query = parts.query
        self.query: dict[str, list[str]] = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.params: dict[str, str] = {}

    def arg(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[-1] if v else default

    def int_arg(self, name: str, default: int) -> int:
        v = self.arg(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise HttpError(400, f"query parameter '{name}' must be an integer", field=name) from None

    def json(self) -> Any:
        if not self.body:
            raise HttpError(400, "request body is empty")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


class HttpError(Exception):
    """Raised by handlers; the app renders it in its system's error shape."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


def encode_cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str, param: str = "cursor") -> dict[str, Any]:
    try:
        pad = "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(token + pad))
        if not isinstance(state, dict):
            raise ValueError
        return state
    except (ValueError, TypeError):
        raise HttpError(400, f"invalid {param}", field=param) from None


# -- rate limiters ------------------------------------------------------------------------------
class RateLimiter:
    """Decides whether a request may proceed; `speed` > 1 makes time pass faster for tests."""

    speed: float = 1.0
    enabled: bool = True

    def admit(self) -> tuple[bool, dict[str, str]]:
        """Return (allowed, headers to add)."""
        return True, {}

    def reset(self) -> None:
        pass


class LeakyBucket(RateLimiter):
    """Shopify's bucket: `capacity` requests, leaking `leak_per_s`; reports used/capacity."""

    def __init__(self, capacity: int, leak_per_s: float, header: str) -> None:
        self.capacity = capacity
        self.leak_per_s = leak_per_s
        self.header = header
        self.level = 0.0
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def admit(self) -> tuple[bool, dict[str, str]]:
        with self.lock:
            now = time.monotonic()
            self.level = max(0.0, self.level - (now - self.at) * self.leak_per_s * self.speed)
            self.at = now
            if not self.enabled:
                return True, {self.header: f"{min(self.capacity, int(self.level) + 1)}/{self.capacity}"}
            if self.level + 1 > self.capacity:
                wait = (self.level + 1 - self.capacity) / (self.leak_per_s * self.speed)
                return False, {self.header: f"{self.capacity}/{self.capacity}", "Retry-After": f"{max(wait, 0.001):.3f}"}
            self.level += 1
            return True, {self.header: f"{int(self.level + 0.999)}/{self.capacity}"}

    def reset(self) -> None:
        with self.lock:
            self.level = 0.0
            self.at = time.monotonic()


class WindowLimiter(RateLimiter):
    """At most `limit` requests per `window_s`; over it, 429 for `cooldown_s` (Squarespace: a minute)."""

    def __init__(self, limit: int, window_s: float, cooldown_s: float = 0.0, headers: bool = False) -> None:
        self.limit = limit
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.headers = headers
        self.times: list[float] = []
        self.blocked_until = 0.0
        self.lock = threading.Lock()

    def admit(self) -> tuple[bool, dict[str, str]]:
        if not self.enabled:
            return True, {}
        with self.lock:
            now = time.monotonic()
            window = self.window_s / self.speed
            if now < self.blocked_until:
                return False, {"Retry-After": f"{self.blocked_until - now:.3f}"}
            cutoff = now - window
            while self.times and self.times[0] <= cutoff:
                self.times.pop(0)
            if len(self.times) >= self.limit:
                if self.cooldown_s:
                    self.blocked_until = now + self.cooldown_s / self.speed
                    wait = self.blocked_until - now
                else:
                    wait = self.times[0] + window - now
                return False, {"Retry-After": f"{max(wait, 0.001):.3f}"}
            self.times.append(now)
            extra = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.limit - len(self.times))} if self.headers else {}
            return True, extra

    def reset(self) -> None:
        with self.lock:
            self.times.clear()
            self.blocked_until = 0.0


# -- faults -------------------------------------------------------------------------------------
@dataclass
class Faults:
    """What the sandbox does wrong on purpose. Rates are probabilities per request (0..1).

    - error_rate: answer 5xx before doing anything.
    - latency_ms: added to every request.
    - timeout_rate: hold the request `timeout_s` seconds, then close it unanswered.
    - drop_rate: close the connection without an answer, before processing.
    - lost_response_rate: process a write, then close the connection unanswered (the client
      cannot know it succeeded: the case idempotent creates must survive).
    - storm_429: the next N requests get 429 (with Retry-After `storm_retry_after`).
    - malformed_rate: a GET answers a truncated JSON body.
    """

    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    timeout_s: float = 35.0
    drop_rate: float = 0.0
    lost_response_rate: float = 0.0
    storm_429: int = 0
    storm_retry_after: float = 1.0
    malformed_rate: float = 0.0
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Drop(Exception):
    """Close the connection without answering."""


# -- the app ------------------------------------------------------------------------------------
class SandboxApp:
    """One fake system. Subclasses set `name`, register routes and implement `seed_data()`."""

    name = "sandbox"
    title = "Sandbox"

    def __init__(self, seed: int = 1, size: int = 50) -> None:
        self.seed = seed
        self.size = size
        self.routes: list[Route] = []
        self.lock = threading.RLock()
        self.counts: Counter[str] = Counter()
        self.write_counts: Counter[str] = Counter()  # the requests of `counts` that could change data
        self.status_counts: Counter[int] = Counter()
        self.faults = Faults()
        self.clock_offset = 0.0
        self.limiter: RateLimiter = RateLimiter()
        self._rng = random.Random(seed)
        self.register_routes()
        self.reset(seed, size)

    # -- to implement ----------------------------------------------------------------------
    def register_routes(self) -> None:
        raise NotImplementedError

    def seed_data(self) -> None:
        """(Re)build every table from `self.seed` and `self.size`."""
        raise NotImplementedError

    def authenticate(self, req: Request) -> None:
        """Raise `HttpError(401, ...)` when the request's credentials are wrong."""

    def error_response(self, err: HttpError) -> Response:
        body: dict[str, Any] = {"error": err.message}
        if err.field:
            body["field"] = err.field
        return Response(err.status, body)

    def credentials(self) -> dict[str, str]:
        """What a user needs to call this sandbox (printed at start)."""
        return {}

    def api_root(self) -> str:
        """The path under the origin where the real API starts (for the start-up banner)."""
        return "/"

    # -- helpers for subclasses --------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler, name: str | None = None) -> None:
        self.routes.append(Route(method, re.compile(f"^{pattern}$"), handler, name or pattern))

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    # -- control -----------------------------------------------------------------------------
    def reset(self, seed: int | None = None, size: int | None = None) -> None:
        with self.lock:
            if seed is not None:
                self.seed = seed
            if size is not None:
                self.size = size
            self.seed_data()
            if getattr(self, "webhooks", None) is not None:  # a fresh seed has no subscriptions yet
                self.webhooks.reset()
            self.counts.clear()
            self.write_counts.clear()
            self.status_counts.clear()
            self.limiter.reset()

    def writes_data(self, req: Request) -> bool:
        """Whether a request could change the system's data (a write method, by default); systems
        whose reads are POSTs (a GraphQL query, a token request) say so."""
        return req.method in WRITE_METHODS

    def stats(self) -> dict[str, Any]:
        """Requests per route; `writes` counts the requests that could change data (`writes_data`),
        `reads` the rest, so a GraphQL query or a token request is not counted as a write."""
        total, writes = sum(self.counts.values()), sum(self.write_counts.values())
        return {
            "system": self.name,
            "reads": total - writes,
            "writes": writes,
            "data_writes": dict(sorted(self.write_counts.items())),
            "requests": dict(sorted(self.counts.items())),
            "statuses": {str(k): v for k, v in sorted(self.status_counts.items())},
        }

    def control(self, req: Request) -> Response:
        sub = req.path[len("/_sandbox/") :].strip("/")
        body = req.json() if req.body else {}
        if sub == "reset" and req.method == "POST":
            self.reset(body.get("seed"), body.get("size"))
            if body.get("consistent"):  # the consistent seed's records (talk_assets/sandbox/consistent.py)
                from talk_assets.sandbox.consistent import restore_app

                try:
                    restore_app(self)
                except FileNotFoundError as exc:
                    raise HttpError(409, str(exc), field="consistent") from None
            return Response(200, {"reset": True, "seed": self.seed, "size": self.size,
                                  "consistent": bool(body.get("consistent"))})
        if sub == "stats" and req.method == "GET":
            return Response(200, self.stats())
        if sub == "stats/reset" and req.method == "POST":
            with self.lock:
                self.counts.clear()
                self.write_counts.clear()
                self.status_counts.clear()
            return Response(200, self.stats())
        if sub == "faults":
            if req.method in ("PUT", "POST"):
                fields = Faults.__dataclass_fields__
                unknown = [k for k in body if k not in fields and k not in ("rate_limit_speed", "rate_limit_enabled")]
                if unknown:
                    raise HttpError(400, f"unknown fault setting(s): {', '.join(unknown)}", field=unknown[0])
                faults = Faults(**{k: v for k, v in body.items() if k in fields})
                self.faults = faults
                self._rng = random.Random(faults.seed if faults.seed is not None else self.seed)
                if "rate_limit_speed" in body:
                    self.limiter.speed = float(body["rate_limit_speed"])
                if "rate_limit_enabled" in body:
                    self.limiter.enabled = bool(body["rate_limit_enabled"])
                self.limiter.reset()
            return Response(200, {**self.faults.as_dict(), "rate_limit_speed": self.limiter.speed,
                                  "rate_limit_enabled": self.limiter.enabled})
        if sub == "clock":
            if req.method == "POST":
                self.clock_offset += float(body.get("advance_s", 0))
            return Response(200, {"now": self.now().isoformat(), "offset_s": self.clock_offset})
        if sub.split("/")[0] == "webhooks" and getattr(self, "webhooks", None) is not None:
            status, out = self.webhooks.control(req.method, sub, body)  # talk_assets/webhooks/sender.py
            return Response(status, out)
        if sub == "info":
            # No credentials here: anyone who can reach the control API would read them.
            return Response(200, {"system": self.name, "seed": self.seed, "size": self.size,
                                  "api_root": self.api_root()})
        raise HttpError(404, f"no sandbox control endpoint {req.method} /_sandbox/{sub}")

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Route a request, applying auth, rate limit and faults to the real API's paths."""
        if req.path.startswith("/_sandbox/"):
            refusal = control_refusal(req.client, req.header(CONTROL_TOKEN_HEADER), os.environ.get(CONTROL_TOKEN_ENV))
            if refusal:
                return Response(403, {"error": refusal, "field": None})
            try:
                return self.control(req)
            except HttpError as err:
                return Response(err.status, {"error": err.message, "field": err.field})
        route, match = self._match(req)
        key = f"{req.method} {route.name if route else req.path}"
        with self.lock:
            self.counts[key] += 1
            if self.writes_data(req):
                self.write_counts[key] += 1
        resp = self._handle_api(req, route, match)
        with self.lock:
            self.status_counts[resp.status] += 1
        return resp

    def _match(self, req: Request) -> tuple[Route | None, re.Match[str] | None]:
        allowed: list[str] = []
        for r in self.routes:
            m = r.pattern.match(req.path)
            if m:
                if r.method == req.method:
                    return r, m
                if r.method not in allowed:
                    allowed.append(r.method)
        if allowed:
            def not_allowed(req: Request) -> Response:
                # RFC 9110 15.5.6: a 405 carries Allow, the methods the resource does support.
                raise HttpError(405, f"method {req.method} is not allowed on {req.path}",
                                headers={"Allow": ", ".join(allowed)})

            return Route(req.method, re.compile(""), not_allowed, "(method not allowed)"), None
        return None, None

    def _handle_api(self, req: Request, route: Route | None, match: re.Match[str] | None) -> Response:
        f = self.faults
        if f.latency_ms:
            time.sleep(f.latency_ms / 1000)
        with self.lock:
            if f.storm_429 > 0:
                f.storm_429 -= 1
                return self._render(HttpError(429, "Too many requests (sandbox 429 storm)"),
                                    {"Retry-After": f"{f.storm_retry_after:g}"})
            roll = self._rng.random()
        if roll < f.drop_rate:
            raise _Drop
        roll -= f.drop_rate
        if roll < f.timeout_rate:
            time.sleep(f.timeout_s)
            raise _Drop
        roll -= f.timeout_rate
        if roll < f.error_rate:
            status = self._rng.choice(f.error_statuses)
            return self._render(HttpError(status, HTTPStatus(status).phrase + " (sandbox fault)"), {})
        roll -= f.error_rate
        try:
            self.authenticate(req)
        except HttpError as err:
            return self._render(err, {})
        allowed, limit_headers = self.limiter.admit()
        if not allowed:
            return self._render(HttpError(429, "Exceeded the rate limit; retry later"), limit_headers)
        if route is None:
            return self._render(HttpError(404, f"Not Found: {req.path}"), limit_headers)
        req.params = match.groupdict() if match else {}
        try:
            with self.lock:
                resp = route.handler(req)
        except HttpError as err:
            resp = self._render(err, {})
        except Exception as exc:  # a sandbox bug must still answer like a server would
            log.exception("%s: handler %s failed", self.name, route.name)
            resp = self._render(HttpError(500, f"internal error: {type(exc).__name__}"), {})
        resp.headers.update(limit_headers)
        if req.method in WRITE_METHODS and roll < f.lost_response_rate:
            raise _Drop
        roll -= f.lost_response_rate
        if req.method == "GET" and resp.status == 200 and 0 <= roll < f.malformed_rate:
            raw = resp.encode()
            resp = Response(200, raw[: max(1, len(raw) // 2)], resp.headers)
        return resp

    def _render(self, err: HttpError, headers: dict[str, str]) -> Response:
        resp = self.error_response(err)
        for k, v in (err.extra.get("headers") or {}).items():
            resp.headers.setdefault(k, v)
        resp.headers.update(headers)
        return resp


# -- the server ---------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s: " + format, self.server.app.name, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """`Date` by the sandbox's clock (which `/_sandbox/clock` advances), as a real server's is its own."""
        return super().date_time_string(self.server.app.now().timestamp() if timestamp is None else timestamp)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, self.path, self.headers, body, client=str(self.client_address[0]))
        try:
            resp = self.server.app.handle(req)
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = resp.encode()
        self.send_response(resp.status)
        if payload or resp.status not in (204, 304):
            self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, OPTIONS, PROPFIND...) is routed too, so the app answers 405 with
        `Allow` in its own error shape, not the standard library's HTML 501."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closed its connection (reset, broken pipe) is no server error: not printed (it
        filled `talk-assets conformance`'s output with tracebacks)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """Serves one `SandboxApp` on a port in a background thread."""

    def __init__(self, app: SandboxApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.httpd = _Server((host, port), app)
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=f"sandbox-{app.name}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
