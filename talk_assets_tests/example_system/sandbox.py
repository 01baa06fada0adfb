"""A tiny newsletter tool: subscribers under `/v1/subscribers`, a bearer key, pages of 50.

There is no vendor behind it (a test-only system), so its contract is this file: list with
`updated_since` (ISO 8601) and `page`, get, create (409 on a taken e-mail), patch; errors as
`{"error": ..., "field": ...}`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from talk_assets.sandbox.server import HttpError, Request, Response, SandboxApp
from talk_assets_tests.example_system.info import INFO

PAGE = 50
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# hostile but valid: a particle, a single name, emoji, a long name
SEED = (
    ("Ada", "van der Berg"), ("Cher", None), ("Zoë 🌸", "Ødegård"), ("Li", "N" * 300), ("Jean-Luc", "O'Neil"),
)


class App(SandboxApp):
    name = "newsletter"
    title = "Example Newsletter"

    def register_routes(self) -> None:
        self.route("GET", r"/v1/subscribers", self.list_subscribers, "subscribers")
        self.route("POST", r"/v1/subscribers", self.create_subscriber, "subscribers")
        self.route("GET", r"/v1/subscribers/(?P<id>\d+)", self.get_subscriber, "subscribers/{id}")
        self.route("PATCH", r"/v1/subscribers/(?P<id>\d+)", self.patch_subscriber, "subscribers/{id}")

    def seed_data(self) -> None:
        base = self.now() - timedelta(days=30)
        self.subscribers: dict[int, dict[str, Any]] = {}
        for i, (first, last) in enumerate(SEED, start=1):
            stamp = (base + timedelta(minutes=i)).isoformat()
            self.subscribers[i] = {"id": i, "email": f"newsletter.{self.seed}.{i}@example.org", "first_name": first,
                                   "last_name": last, "updated_at": stamp}
        self.next_id = len(SEED) + 1

    def authenticate(self, req: Request) -> None:
        if req.header("Authorization") != f"Bearer {INFO.settings['api_key'].default}":
            raise HttpError(401, "invalid or missing bearer key")

    def credentials(self) -> dict[str, str]:
        return {INFO.settings["api_key"].env: INFO.settings["api_key"].default}

    def api_root(self) -> str:
        return "/v1"

    def list_subscribers(self, req: Request) -> Response:
        since = req.arg("updated_since")
        rows = sorted(self.subscribers.values(), key=lambda r: r["id"])
        if since:
            rows = [r for r in rows if r["updated_at"] >= since]
        page = req.int_arg("page", 1)
        chunk = rows[(page - 1) * PAGE: page * PAGE]
        return Response(200, {"subscribers": chunk, "next_page": page + 1 if len(rows) > page * PAGE else None})

    def _get(self, req: Request) -> dict[str, Any]:
        rec = self.subscribers.get(int(req.params["id"]))
        if rec is None:
            raise HttpError(404, "subscriber not found")
        return rec

    def get_subscriber(self, req: Request) -> Response:
        return Response(200, self._get(req))

    def _validate(self, body: Any, rec_id: int | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        unknown = set(body) - {"email", "first_name", "last_name"}
        if unknown:
            raise HttpError(400, f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
        if "email" in body:
            if not isinstance(body["email"], str) or not EMAIL.match(body["email"]):
                raise HttpError(422, "email is not an e-mail address", field="email")
            if any(r["email"] == body["email"] and r["id"] != rec_id for r in self.subscribers.values()):
                raise HttpError(409, "email is taken", field="email")
        return body

    def create_subscriber(self, req: Request) -> Response:
        body = self._validate(req.json(), None)
        if "email" not in body:
            raise HttpError(422, "email is required", field="email")
        rec = {"id": self.next_id, "email": body["email"], "first_name": body.get("first_name"),
               "last_name": body.get("last_name"), "updated_at": self.now().isoformat()}
        self.subscribers[rec["id"]] = rec
        self.next_id += 1
        return Response(201, rec)

    def patch_subscriber(self, req: Request) -> Response:
        rec = self._get(req)
        rec.update(self._validate(req.json(), rec["id"]))
        rec["updated_at"] = self.now().isoformat()
        return Response(200, rec)
