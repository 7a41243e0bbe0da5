"""``posture findings show ID``: one finding with its evidence, deadline, advice and whole history."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any


def show(args: argparse.Namespace) -> int:
    from agent.notify.i18n import moment
    from agent.output import dump_json
    from agent.session import Session
    from agent.tracking.finding_views import config_change, decision_line, event_json, finding_json
    from agent.tracking.remediation import deadline_policy, deadlines
    from probes.catalog import load_catalog

    session = Session.from_args(args)
    catalog = load_catalog()
    now = session.clock_now()
    tz = session.config.agent.timezone
    with session.open_store() as store:
        f = store.finding(args.id).at(now)
        events = store.events(args.id)
        assets = store.assets()
        kinds = {a.name: a.kind for a in assets}
        url = next((a.url for a in assets if a.name == f.asset), "")
        due = deadlines(store, deadline_policy(session.config), [f], kinds).get(f.id)
        change = config_change(store, f.id) if f.state.value == "resolved_by_config" else None
    from agent.targets import query_values

    doc = finding_json(f, catalog, due, now, change, query_values(url))
    check = catalog[f.check_id]
    doc["remediation"] = check.remediation_en
    doc["remediation_zh"] = check.remediation_zh
    doc["history"] = [event_json(e) for e in events]
    if "json" in (args.show_format, getattr(args, "format", None)):  # findings --format json show ID too
        dump_json({"finding": doc})
        return 0
    print(f"finding #{f.id}  {f.asset}  {f.check_id}  {f.key}")
    print(f"  {check.title_en} / {check.title_zh}")
    print(f"  severity {f.severity}, {f.state.value}" + ("  OVERDUE" if doc["overdue"] else ""))
    print(f"  first seen {moment(f.first_seen, tz)}, last seen {moment(f.last_seen, tz)}"
          + (f", fixed {moment(f.fixed_at, tz)}" if f.fixed_at else ""))
    print(f"  deadline {moment(due, tz) if due else 'none for this severity'}")
    if doc["accepted"] and f.state.value == "accepted":
        a = doc["accepted"]
        print(f"  accepted by {a['by']} until {a['until']}: {a['reason']}")
    if doc["false_positive"] and f.state.value == "false_positive":
        print(f"  false positive by {doc['false_positive']['by']}: {doc['false_positive']['reason']}")
    print("  evidence (as last seen):")
    for key, value in sorted(f.evidence.items()):
        print(f"    {_short(key)}: {_short(value)}")
    print(f"  remediation: {check.remediation_en}")
    if check.references:
        print(f"  references: {', '.join(check.references)}")
    print(f"  history ({len(events)} event(s), times in {tz}):")
    for e in events:
        when = moment(e.at, tz) if isinstance(e.at, datetime) else str(e.at)
        note = _short(decision_line(e.kind.value, e.detail))
        scan = f" scan #{e.scan_id}" if e.scan_id is not None else ""
        print(f"    {when}  {e.kind.value:<18} {e.from_state.value if e.from_state else '-'} -> "
              f"{e.to_state.value}{scan}" + (f"  ({note})" if note else ""))
    return 0


def _short(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    from vocab import escape

    text = escape(" ".join(text.split()))
    return text if len(text) <= 300 else text[:299] + "…"
