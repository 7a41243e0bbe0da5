"""The half-yearly declaration pack: everything a firm attaches to its security declaration,
built from history alone so that a rebuild is identical in content.

Layout of a pack directory (every name fixed, files in a fixed order)::

    README.txt           what this is and how to verify it (sha256sum -c SHA256SUMS)
    report.html          the evidence report for the half year (zh-TW), as of its last moment
    report.csv           the same as a table (UTF-8 with BOM, for spreadsheets)
    report.json          the same as data
    report.pdf           when this build has a PDF writer
    duties.json          the compliance calendar on the half year's last day, and the duty records
    duties.csv           the duty records, one a line
    evidence/...         each record's evidence file, byte for byte as recorded
    manifest.json        every file above with its size and SHA-256
    SHA256SUMS           every file above and the manifest, in ``sha256sum -c`` format

Timestamps come from history (the half year's end), never the wall clock.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agent.errors import AgentError, UsageError
from schedules.duties import HalfYear

if TYPE_CHECKING:
    from agent.config import Config
    from state.duty_records import DutyRecordInfo
    from state.store import Store

PACK_FORMAT = 1
SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
_SAFE = re.compile(r"[^\w.-]+")  # letters (any script), digits, _ . -: nothing sha256sum would escape


@dataclass(frozen=True)
class Pack:
    directory: Path
    half: HalfYear
    files: tuple[tuple[str, str, int], ...]  # (relative path, sha256, size), SHA256SUMS excluded

    @property
    def manifest_sha256(self) -> str:
        return next(h for p, h, _ in self.files if p == MANIFEST)


def _moment(day: Any, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def _pdf(html: str, chromium: str | None, stamp: datetime) -> tuple[bytes | None, str | None]:
    """(the report as PDF, None) when this build has a PDF writer (agent.report.pdf: the HTML printed
    by Chromium) and it works here; else (None, why not)."""
    import importlib

    try:
        module = importlib.import_module("agent.report.pdf")
    except ImportError:
        return None, "this build of posture has no PDF writer"
    render = getattr(module, "render_pdf", None)
    if render is None:
        return None, "this build of posture has no PDF writer"
    try:
        out = render(html, chromium)
    except AgentError as exc:
        return None, str(exc)
    return steady_pdf(bytes(out), stamp), None


_PDF_DATE = re.compile(rb"\(D:\d{14}(?:[+-]\d{2}'\d{2}'|Z00'00')\)")
_PDF_NODE = re.compile(rb"node\d{8}")


def steady_pdf(pdf: bytes, stamp: datetime) -> bytes:
    """Chromium's PDF with what varies between two prints of the same page made steady: its
    creation and modification dates become ``stamp``, its structure-tree node ids (DOM node ids,
    numbered differently in each run) are numbered in document order. Every replacement keeps
    its length, so the cross-reference offsets hold."""
    when = b"(D:" + stamp.astimezone(UTC).strftime("%Y%m%d%H%M%S").encode() + b"+00'00')"
    pdf = _PDF_DATE.sub(lambda m: when if len(m.group(0)) == len(when) else m.group(0), pdf)
    # Renumbered in order of first appearance (the structure elements come in document order),
    # then the ID name tree's leaf re-sorted under its new names, its limits set to match. A tree
    # of several leaves cannot be re-sorted in place (its leaves' lengths would change): there the
    # ids are numbered by rank, which keeps the tree valid but not always the bytes steady.
    found = _PDF_NODE.findall(pdf)
    order: dict[bytes, bytes] = {}
    if len(_PDF_LEAF.findall(pdf)) <= 1:
        for node in found:
            order.setdefault(node, b"node%08d" % len(order))
    else:
        order = {n: b"node%08d" % i for i, n in enumerate(sorted(set(found), key=lambda n: int(n[4:])))}
    pdf = _PDF_NODE.sub(lambda m: order[m.group(0)], pdf)
    return _PDF_LEAF.sub(_sorted_leaf, pdf)


_PDF_LEAF = re.compile(rb"/Limits \[\((node\d{8})\) \((node\d{8})\)\](\s*)/Names \[((?:\(node\d{8}\) \d+ \d+ R ?)+)\]")
_PDF_PAIR = re.compile(rb"\((node\d{8})\) (\d+ \d+ R)")


def _sorted_leaf(m: re.Match[bytes]) -> bytes:
    pairs = sorted(_PDF_PAIR.findall(m.group(4)))
    names = b" ".join(b"(%s) %s" % pair for pair in pairs)
    if len(names) != len(m.group(4).rstrip()):
        return m.group(0)  # not the layout this expects: leave it as it is
    names += m.group(4)[len(names):]
    return b"/Limits [(%s) (%s)]%s/Names [%s]" % (pairs[0][0], pairs[-1][0], m.group(3), names)


def _evidence_name(r: DutyRecordInfo) -> str:
    source = "x" if r.source == "external_scan" else "d"
    base = _SAFE.sub("_", r.evidence_name or "evidence").strip("._") or "evidence"
    return f"evidence/{r.performed_on.isoformat()}-{r.kind}-{source}{r.id}-{base[:120]}"


def _chosen(records: list[DutyRecordInfo], half: HalfYear) -> list[DutyRecordInfo]:
    """Records done in the half year, and per kind the newest before it (the one still standing)."""
    inside = [r for r in records if half.start <= r.performed_on < half.end]
    standing: dict[str, DutyRecordInfo] = {}
    for r in records:
        if r.performed_on < half.start:
            standing[r.kind] = r  # oldest first: the newest wins
    return sorted([*standing.values(), *inside], key=lambda r: (r.performed_on, r.kind, r.source, r.id))


def _record_json(r: DutyRecordInfo, file: str | None) -> dict[str, Any]:
    return {"kind": r.kind, "date": r.performed_entered, "performed_on": r.performed_on.isoformat(),
            "by": r.performed_by, "recorded_at": r.recorded_at.isoformat(), "source": r.source, "id": r.id,
            "evidence": r.evidence_name, "evidence_path": r.evidence_path, "sha256": r.evidence_sha256,
            "size": r.evidence_size, "file": file, "note": r.note}


def contents(cfg: Config, store: Store, half: HalfYear, version: str) -> tuple[dict[str, bytes], str]:
    """Every file of the pack (but the manifest and sums) by relative path, and what became of the PDF."""
    from agent.report.gather import gather
    from agent.report.html import render_html
    from agent.report.model import Lang, Period
    from agent.report.tabular import report_csv, report_json
    from agent.tracking.duties import calendar, status_json
    from probes.catalog import load_catalog
    from state.duty_records import evidence, records

    tz = cfg.agent.timezone
    since, until = _moment(half.start, tz), _moment(half.end, tz)
    period = Period(since, until, tz, declaration=True)
    lang = Lang("zh-TW")
    data = gather(store, cfg, load_catalog(), period=period, now=until, posture_version=version)
    files: dict[str, bytes] = {
        "report.html": render_html(data, lang).encode(),
        "report.csv": report_csv(data, lang).encode("utf-8-sig"),
        "report.json": (json.dumps(report_json(data, lang), ensure_ascii=False, indent=1) + "\n").encode(),
    }
    pdf, why = _pdf(files["report.html"].decode(), cfg.social.chromium, until)
    if pdf is not None:
        files["report.pdf"] = pdf
    chosen = _chosen(records(store, tz, until=half.end), half)
    listed: list[dict[str, Any]] = []
    for r in chosen:
        name = None
        if r.evidence_sha256 is not None:
            blob = evidence(store, r)
            if blob is not None:
                name = _evidence_name(r)
                files[name] = blob
        listed.append(_record_json(r, name))
    duties = {"firm": cfg.firm_settings().name, "tier": cfg.firm_settings().tier, "period": half.label,
              "as_of": half.last_day.isoformat(),
              "calendar": [status_json(s) for s in calendar(cfg, store, half.last_day)], "records": listed}
    files["duties.json"] = (json.dumps(duties, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    cols = ["kind", "date", "by", "source", "id", "evidence", "sha256", "size", "file", "note"]
    w.writerow(cols)
    for rec in listed:
        w.writerow(["" if rec[c] is None else rec[c] for c in cols])
    files["duties.csv"] = out.getvalue().encode("utf-8-sig")
    files["README.txt"] = _readme(cfg, half).encode()
    return files, "included" if why is None else f"not included: {why}"


def _readme(cfg: Config, half: HalfYear) -> str:
    firm = cfg.firm_settings().name or "(firm name not configured)"
    return (f"posture declaration pack {half.label} ({half.start} to {half.last_day})\n"
            f"Firm: {firm}, tier {cfg.firm_settings().tier}\n"
            f"Declaration window: {half.window_first} to {half.window_last}\n\n"
            "Verify every file (no posture needed), in this directory:\n\n"
            "    sha256sum -c SHA256SUMS\n\n"
            "manifest.json lists the same files with their sizes; duties.json the duty records\n"
            "and the files under evidence/ that hold their reports, byte for byte as recorded.\n")


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def build(cfg: Config, store: Store, half: HalfYear, directory: Path, now: datetime, version: str) -> Pack:
    """Write the pack into ``directory`` (created, or replaced when it holds an earlier pack)."""
    tz = cfg.agent.timezone
    if _moment(half.end, tz) > now:
        raise UsageError(f"the half year {half.label} has not ended yet (it ends {half.last_day})")
    files, pdf_note = contents(cfg, store, half, version)
    entries = sorted((p, _digest(b), len(b)) for p, b in files.items())
    manifest = {"format": PACK_FORMAT, "period": half.label, "from": half.start.isoformat(),
                "to": half.last_day.isoformat(), "window": [half.window_first.isoformat(),
                                                            half.window_last.isoformat()],
                "firm": cfg.firm_settings().name, "tier": cfg.firm_settings().tier, "posture_version": version,
                "timezone": tz, "report_pdf": pdf_note,
                "files": [{"path": p, "sha256": h, "size": n} for p, h, n in entries]}
    files[MANIFEST] = (json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()
    entries = sorted((p, _digest(b), len(b)) for p, b in files.items())
    sums = "".join(f"{h}  {p}\n" for p, h, _ in entries).encode()
    _write_dir(directory, {**files, SUMS: sums}, _moment(half.end, tz).timestamp())
    return Pack(directory, half, tuple(entries))


def _write_dir(directory: Path, files: dict[str, bytes], mtime: float) -> None:
    """Write whole or not at all: a half-written pack must never pass for evidence. Every file's
    modification time is the half year's end, not the moment of the build."""
    # A symbolic link (packs/latest -> packs/2026-H1) stays a link: the directory it names is
    # what is written, never the link swapped for a directory of its own.
    target = Path(os.path.realpath(directory)) if directory.is_symlink() else directory.absolute()
    if target.exists() and not target.is_dir():
        raise UsageError(f"-o {directory}: not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / SUMS).is_file():
        raise UsageError(f"-o {directory}: the directory is not empty and holds no pack; give a new or empty one")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise UsageError(f"cannot write {directory}: {exc.strerror or exc}") from None
    mask = os.umask(0)
    os.umask(mask)
    try:
        for rel, blob in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
            os.chmod(path, 0o666 & ~mask)
            os.utime(path, (mtime, mtime))
        for d in sorted({p.parent for p in tmp.rglob("*")}):
            os.chmod(d, 0o777 & ~mask)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"cannot write {directory}: {exc.strerror or exc}") from None


def default_dir(cfg: Config) -> Path:
    """Where the daemon builds packs: ``[firm] pack_dir``, else ``packs`` in the state directory."""
    given = cfg.firm_settings().pack_dir
    if given:
        return Path(given)
    from state.engine import default_db_path

    return default_db_path().parent / "packs"
