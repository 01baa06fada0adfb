"""The custom APIs' read-only fields, from their own OpenAPI documents (`<system>/openapi.json`,
generated from the models, where a server-kept field is `readOnly`): the views declare them with
`declare_writes`, so a field the server computes (an order's totals, ids) is never written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from talk_assets.sync.model import View, writability
from talk_assets.systems.customapi.spec import SystemSpec

SYSTEMS_DIR = Path(__file__).resolve().parent.parent


def declare_writes(spec: SystemSpec, views: tuple[View, ...]) -> tuple[View, ...]:
    """`views` with the fields their entity's schema marks readOnly declared read-only (the custom APIs
    create and update with the same schema, so there are no create-only fields)."""
    doc = json.loads((SYSTEMS_DIR / spec.key / "openapi.json").read_text(encoding="utf-8"))
    models = {e.name: e.model.__name__ for e in spec.entities}
    out = []
    for v in views:
        ro, co = writability(doc["components"]["schemas"], [p.field for p in v.props], models[v.entity],
                             source=f"{spec.title} OpenAPI")
        out.append(replace(v, read_only=ro, create_only=co))
    return tuple(out)
