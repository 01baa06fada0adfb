"""The dataflow documents, in the seed documents' own reStructuredText format, filled from the declaration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from talk_assets.config import SYSTEMS
from talk_assets.sync.declaration import DATAFLOWS, SEED_TITLES, Dataflow


def _title(text: str, char: str, over: bool = False) -> list[str]:
    line = char * len(text)
    return [line, text, line] if over else [text, line]


def _entity(system_title: str, flow_view_name: str) -> str:
    return f"{system_title} {flow_view_name}"


def render_flow(flow: Dataflow) -> list[str]:
    """One section; system names as the seed document spells them (seed 000 says "Customcrm")."""
    src_system, tgt_system = SEED_TITLES.get(flow.seed, (SYSTEMS[flow.source.system].title,
                                                          SYSTEMS[flow.target.system].title))
    src = _entity(src_system, flow.source.name)
    tgt = _entity(tgt_system, flow.target.name)
    out = _title(f"{src} to {tgt}", "-")
    out += ["", f"Every {src} will be synchronized with a {tgt}.", ""]
    out += [f"Once a link between a {src} and a {tgt} is established, it will keep in sync between the two "
            "systems, regardless of where it is edited.", ""]
    out += [f"Link mode: {flow.link_mode}." + (f" {flow.note}" if flow.note else ""), ""]
    out += [f"The following properties are synchronized between a {src} and a {tgt}:", ""]
    out += [".. list-table::", "   :header-rows: 1", ""]
    out += [f"   * - {src} Property", f"     - {tgt} Property", f"     - {tgt_system} Data Type"]
    rows = flow.property_rows()
    # a target field that is never written is not "synchronized" to it: one its API declares read-only
    # (`Prop.not_written` says why) is listed with the reason, one that is derived or read only for
    # merging is listed apart, as is a field written only when the record is created
    synced = [(sp, tp) for sp, tp in rows if tp.write is not None and not tp.not_written]
    written = {tp.field for _sp, tp in synced}
    read_only = list(dict.fromkeys(tp.field for _sp, tp in rows if tp.field not in written and not tp.not_written))
    create_only = list(dict.fromkeys(tp.field for _sp, tp in synced if not tp.on_update))
    for sp, tp in synced:
        out += [f"   * - {sp.field}", f"     - {tp.field}", f"     - {tp.type}"]
    out += [""]
    if create_only:
        out += [f"Written when the {tgt} is created and never changed afterwards (its API does not let us "
                f"change them, or they identify the record): {', '.join(f'``{f}``' for f in create_only)}.", ""]
    if read_only:
        out += [f"Read from the {tgt} (for merging and conflicts) but never written to it (computed by it, or "
                f"derived): {', '.join(f'``{f}``' for f in read_only)}.", ""]
    not_written = [(title, p) for sp, tp in rows for title, p in ((src_system, sp), (tgt_system, tp)) if p.not_written]
    if not_written:
        out += ["These properties are not synchronized to the system named, whose API does not let them be "
                "written:", "", ".. list-table::", "   :header-rows: 1", "",
                "   * - System", "     - Property", "     - Why"]
        for title, p in dict.fromkeys(not_written):
            out += [f"   * - {title}", f"     - {p.field}", f"     - {p.not_written}"]
        out += [""]
    out += [""]
    return out


def render_seed(seed: str, generated: datetime | None = None) -> str:
    """One seed document: its flows, each once (the seeds repeat some sections)."""
    source, target = SEED_TITLES[seed]
    generated = generated or datetime.now(UTC)
    out = _title(f"{source} to {target} Dataflow", "=", over=True)
    out += ["", f"Generated: {generated:%Y-%m-%d %H:%M:%S}", ""]
    out += _title("Introduction", "-")
    out += ["", f"This technical document provides a detailed overview of the talk-assets data flow from {source} "
            f"to {target}. It serves as a QA checklist for testing purposes. It is generated from "
            "``talk_assets/sync/declaration.py``, the declaration the sync itself runs on.", "", ""]
    seen: set[str] = set()
    for flow in DATAFLOWS:
        if flow.seed == seed and flow.key not in seen:
            seen.add(flow.key)
            out += render_flow(flow)
    return "\n".join(out).rstrip() + "\n"


def write_docs(out_dir: Path, generated: datetime | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, (source, target) in SEED_TITLES.items():
        name = f"{seed}_{source}_to_{target}".lower().replace(" ", "_") + ".rst"
        path = out_dir / name
        path.write_text(render_seed(seed, generated), encoding="utf-8")
        paths.append(path)
    return paths
