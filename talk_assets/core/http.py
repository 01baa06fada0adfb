"""The one HTTP layer every connector uses.

A `requests.Session` per system (connection pooling), timeouts, retries with backoff that honour
`Retry-After` (Shopify sends fractional values such as "2.0", which urllib3's `Retry` cannot
parse) and proactive pacing from call-limit headers, and errors that name the system, endpoint,
status and the server's message but never a credential.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from talk_assets.settings import settings

log = logging.getLogger("talk_assets.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class ApiError(Exception):
    """An API call that failed for good. The message names system, endpoint, status and reason."""

    def __init__(
        self,
        system: str,
        method: str,
        endpoint: str,
        status: int | None,
        message: str,
        body: Any = None,
        field: str | None = None,
    ) -> None:
        self.system = system
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.body = body
        self.field = field
        where = f"{system} {method} {endpoint}"
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{where}: {status_text}: {message}")

    @property
    def transient(self) -> bool:
        """Worth trying again later (rate limit, server error, network), as opposed to a rejection."""
        return self.status is None or self.status == 429 or self.status in TRANSIENT_STATUSES


def system_fault(status: int | None) -> str | None:
    """Why a failed call is the system's problem rather than the record's, or None for a rejection
    of the record itself (400, 404, 409, 422...): authentication, authorisation, rate, server, network."""
    if status is None:
        return "no response"
    if status == 401:
        return "authentication failed"
    if status == 403:
        return "access denied"
    if status == 429:
        return "rate limited"
    if status >= 500:
        return "server error"
    return None


def settings_hint(system: str, status: int | None) -> str:
    """The environment variables to look at for a system-level failure (names only, never values)."""
    try:
        from talk_assets.config import SYSTEMS
    except ImportError:  # pragma: no cover - config moved
        return ""
    info = SYSTEMS.get(system)
    if info is None:
        return ""
    secrets = [s.env for s in info.settings.values() if s.secret]
    if status in (401, 403):
        what = "credentials" if status == 401 else "credentials and the access (scopes) they grant"
        return f"check the {what}: {', '.join(secrets)}" if secrets else ""
    if status == 429:
        return f"the pace is set by TALK_{system.upper()}_MAX_RPS"
    if status is None or status >= 500:
        return f"is {info.url_env} right and the system up?"
    return ""


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in `text` with a marker."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


@dataclass
class Pacer:
    """Spaces requests so a rate limit is respected before the server has to say 429.

    `min_interval` is a fixed floor (e.g. 0.1 s for 10 requests/s). `observe()` reads a
    call-limit header of the form "used/capacity" (Shopify's leaky bucket) and, once the bucket
    is nearly full, waits for it to drain at `leak_per_s`.
    """

    min_interval: float = 0.0
    leak_per_s: float = 0.0
    headroom: int = 4
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_at: float = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next_at - now
            self._next_at = max(now, self._next_at) + self.min_interval
        if delay > 0:
            time.sleep(delay)

    def observe(self, used: int, capacity: int) -> None:
        if not self.leak_per_s:
            return
        over = used - (capacity - self.headroom)
        if over > 0:
            with self._lock:
                self._next_at = max(self._next_at, time.monotonic() + over / self.leak_per_s)

    def hold(self, seconds: float) -> None:
        """Everyone waits `seconds` (after a 429 with Retry-After)."""
        with self._lock:
            self._next_at = max(self._next_at, time.monotonic() + seconds)


def parse_retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


@dataclass
class RetryPolicy:
    """How often and how long to retry. Writes that are not idempotent retry only on 429
    (the server refused them unprocessed) unless the caller says the request is idempotent."""

    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    default_retry_after: float = 1.0
    max_rate_limit_wait: float = 300.0  # a 429 means "wait", not "failed": wait up to this long in all

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)


# A system's error parser reads the JSON error body it knows (message, offending field) and
# returns None for a body it does not recognise; `parse_error_response` handles the rest.
ErrorParser = Callable[[Any, requests.Response], "tuple[str, str | None] | None"]


def _server_time(resp: requests.Response) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(resp.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None


def default_error_parser(body: Any, resp: requests.Response) -> tuple[str, str | None] | None:
    """The message of a generic JSON error body."""
    return _message_from_body(body), None


def parse_error_response(resp: requests.Response, parser: ErrorParser) -> tuple[str, str | None]:
    """Message and field of an error answer: the system's parser for JSON bodies, else the text."""
    try:
        body = resp.json()
    except ValueError:
        return (resp.text[:300] or resp.reason or "error"), None
    return parser(body, resp) or default_error_parser(body, resp) or (resp.reason or "error", None)


def _message_from_body(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "detail", "title", "error", "errors"):
            if key in body and body[key]:
                v = body[key]
                return v if isinstance(v, str) else _message_from_body(v) if isinstance(v, dict) else str(v)
        return str(body)[:300]
    return str(body)[:300]


class ApiClient:
    """Base client: a pooled session, retries, pacing and clean errors for one system."""

    system = "api"

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        secrets: Iterable[str] = (),
        error_parser: ErrorParser = default_error_parser,
        call_limit_header: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "talk-assets/0.1"})
        if headers:
            self.session.headers.update(headers)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer()
        # the documented request rate is the default pace; TALK_<SYSTEM>_MAX_RPS overrides it (e.g. a
        # sandbox whose limit is sped up, or a plan with a higher limit)
        rps = settings().max_rps(self.system)
        if rps is not None:
            self.pacer.min_interval = 1 / rps if rps > 0 else 0.0
        self._secrets = [s for s in secrets if s]
        self.error_parser = error_parser
        self.call_limit_header = call_limit_header
        self.calls = 0
        self.first_server_time: datetime | None = None  # see `server_time_since`

    # -- hooks for subclasses -------------------------------------------------------------
    def prepare(self, headers: dict[str, str]) -> None:
        """Add per-request headers (e.g. a bearer token that may need refreshing)."""

    def on_unauthorized(self) -> bool:
        """Called on 401; return True if credentials were refreshed and the call may be retried."""
        return False

    # -- the request loop -------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        ok: Iterable[int] = (),
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one request, retrying what is safe to retry; raise `ApiError` on failure.

        Statuses in `ok` are returned instead of raised (e.g. 404 for a lookup).
        """
        method = method.upper()
        endpoint = path.split("?")[0] if not path.startswith("http") else requests.utils.urlparse(path).path
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        ok = set(ok)
        attempt = 0
        refreshed = False
        waited_429 = 0.0
        while True:
            h = dict(headers or {})
            self.prepare(h)  # before taking a slot: preparing may itself call the API (a token)
            self.pacer.wait()
            try:
                self.calls += 1
                resp = self.session.request(
                    method, self.url(path), params=params, json=json, data=data, headers=h, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # The request may have been processed: only idempotent requests are repeated.
                if idempotent and attempt < self.retry.max_retries:
                    time.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                raise ApiError(self.system, method, endpoint, None, self._clean(f"{type(exc).__name__}: {exc}")) from None
            self._observe_limits(resp)
            if self.first_server_time is None:
                self.first_server_time = _server_time(resp)
            status = resp.status_code
            if status < 400 or status in ok:
                return resp
            if status == 401 and not refreshed and self.on_unauthorized():
                refreshed = True
                continue
            if status == 429:
                wait = parse_retry_after(resp.headers.get("Retry-After"), self.retry.default_retry_after)
                if waited_429 + wait <= self.retry.max_rate_limit_wait:
                    waited_429 += wait
                    self.pacer.hold(wait)
                    log.info("%s %s %s: 429, waiting %.2fs", self.system, method, endpoint, wait)
                    continue
            if status in TRANSIENT_STATUSES and idempotent and attempt < self.retry.max_retries:
                time.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            message, fld = parse_error_response(resp, self.error_parser)
            try:
                body = resp.json()
            except ValueError:
                body = resp.text[:2000]
            hint = settings_hint(self.system, status) if status in (401, 403, 429) else ""
            raise ApiError(self.system, method, endpoint, status, self._clean(message) + (f" ({hint})" if hint else ""),
                           body, fld)

    def server_time_since(self) -> Callable[[], datetime | None]:
        """Start watching the server's clock: the returned function gives the `Date` of the first
        response after this call (None if the server sends none). A read of changes that began then
        has seen every record committed before it, by the server's own clock, not ours."""
        self.first_server_time = None
        return lambda: self.first_server_time

    def _observe_limits(self, resp: requests.Response) -> None:
        if not self.call_limit_header:
            return
        value = resp.headers.get(self.call_limit_header)
        if value and "/" in value:
            used, _, cap = value.partition("/")
            with contextlib.suppress(ValueError):
                self.pacer.observe(int(used), int(cap))

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    def get_json(self, path: str, **kw: Any) -> Any:
        """GET and parse; a body that is not valid JSON (cut off in transit) is fetched again."""
        for attempt in range(self.retry.max_retries + 1):
            resp = self.request("GET", path, **kw)
            if not resp.content:
                return None
            try:
                return resp.json()
            except ValueError:
                if attempt == self.retry.max_retries:
                    raise ApiError(self.system, "GET", path.split("?")[0], resp.status_code,
                                   f"the response is not valid JSON ({len(resp.content)} bytes)") from None
                time.sleep(self.retry.delay(attempt))
        return None

    def close(self) -> None:
        self.session.close()
