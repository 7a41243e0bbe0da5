"""Charts as inline SVG, built as text: no script, no font or image from outside.

Sizes are in user units with a viewBox, so a chart scales to the page width on
screen and in print. Text uses the page's font (inherited from the HTML).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from html import escape
from zoneinfo import ZoneInfo

from agent.report.model import CertificateEntry, SeriesPoint
from vocab import SEVERITY_ORDER

COLOURS = {"critical": "#7f1d1d", "high": "#dc2626", "medium": "#f59e0b", "low": "#2563eb", "info": "#9ca3af"}
_W, _H = 720, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 110, 14, 30


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _nice_max(value: int) -> int:
    """A round axis top at or above ``value`` (1, 2, 5, 10, 20, 50...)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def _ticks(top: int) -> list[int]:
    step = max(top // 4, 1)
    return list(range(0, top + 1, step))


def scan_days(scans: Sequence[datetime], tz: str) -> set[str]:
    zone = ZoneInfo(tz)
    return {t.astimezone(zone).date().isoformat() for t in scans}


def open_findings_chart(
    points: Sequence[SeriesPoint], tz: str, labels: dict[str, str], *, title: str,
    scans: Sequence[datetime] | None = None,
) -> str:
    """Stacked areas of findings needing a fix, by severity, over the period (step-wise between samples).

    ``scans``: when the scans were made. When they all fall on one day an area would be a
    sliver at the edge of an empty frame, so each scan is drawn as points instead.
    """
    if not points:
        return ""
    if scans and len(scan_days(scans, tz)) == 1:
        return _points_chart(points, tz, labels, title=title, scans=sorted(scans))
    zone = ZoneInfo(tz)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    t0, t1 = points[0].at.timestamp(), points[-1].at.timestamp()
    span = max(t1 - t0, 1.0)
    top = _nice_max(max((p.total for p in points), default=0))

    def x(at: datetime) -> float:
        return _LEFT + (at.timestamp() - t0) / span * plot_w

    def y(n: float) -> float:
        return _TOP + plot_h - n / top * plot_h

    parts = _frame(title, "chart", top, y, plot_w)
    # Stack from the most severe at the bottom, so the worst is always easiest to read.
    base = [0] * len(points)
    for sev in SEVERITY_ORDER:
        values = [p.counts.get(sev, 0) for p in points]
        if not any(values):
            continue
        upper = [b + v for b, v in zip(base, values, strict=True)]
        path = _step_area(points, base, upper, x, y)
        parts.append(f'<path d="{path}" fill="{COLOURS[sev]}" stroke="none">'
                     f'<title>{_e(labels.get(sev, sev))}</title></path>')
        base = upper
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#111827"/>')
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{y(0):.1f}" stroke="#111827"/>')
    for at, text in _month_ticks(points[0].at, points[-1].at, zone):
        parts.append(f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{y(0):.1f}" y2="{y(0) + 4:.1f}" stroke="#111827"/>')
        parts.append(f'<text x="{x(at):.1f}" y="{y(0) + 17:.1f}" text-anchor="middle" font-size="11" '
                     f'fill="#374151">{_e(text)}</text>')
    parts.extend(_legend(labels))
    parts.append("</svg>")
    return "".join(parts)


def _at(points: Sequence[SeriesPoint], moment: datetime) -> SeriesPoint:
    """The series' value at ``moment`` (the last point at or before it)."""
    current = points[0]
    for p in points:
        if p.at > moment:
            break
        current = p
    return current


def _points_chart(points: Sequence[SeriesPoint], tz: str, labels: dict[str, str], *, title: str,
                  scans: Sequence[datetime]) -> str:
    """Scans on one day: the count of each severity after each scan, as stacked points on that day's hours."""
    zone = ZoneInfo(tz)
    day = scans[0].astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    # After each scan (its findings are recorded when it ends; a minute covers that) and at the report's moment.
    moments = sorted({*(min(t + timedelta(minutes=1), points[-1].at) for t in scans)})
    values = [_at(points, t) for t in moments]
    top = _nice_max(max((v.total for v in values), default=0) or 1)

    def x(at: datetime) -> float:
        return _LEFT + 20 + (at - start) / timedelta(days=1) * (plot_w - 40)

    def y(n: float) -> float:
        return _TOP + plot_h - n / top * plot_h

    parts = _frame(title, "chart points", top, y, plot_w)
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#111827"/>')
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{y(0):.1f}" stroke="#111827"/>')
    for hour in range(0, 25, 6):
        at = start + timedelta(hours=hour)
        parts.append(f'<text x="{x(at):.1f}" y="{y(0) + 17:.1f}" text-anchor="middle" font-size="11" '
                     f'fill="#374151">{_e(f"{day.isoformat()} {hour:02d}:00" if hour == 0 else f"{hour:02d}:00")}'
                     "</text>")
    for moment, value in zip(moments, values, strict=True):
        cx = x(moment)
        base = 0
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(0):.1f}" y2="{y(max(value.total, 0)):.1f}" '
                     'stroke="#6b7280" stroke-dasharray="2 2"/>')
        for sev in SEVERITY_ORDER:
            n = value.counts.get(sev, 0)
            if not n:
                continue
            base += n
            parts.append(f'<circle cx="{cx:.1f}" cy="{y(base):.1f}" r="6" fill="{COLOURS[sev]}" class="point">'
                         f'<title>{_e(labels.get(sev, sev))}: {n}</title></circle>')
        if value.total == 0:
            parts.append(f'<circle cx="{cx:.1f}" cy="{y(0):.1f}" r="6" fill="#fff" stroke="#111827" '
                         'class="point"><title>0</title></circle>')
        parts.append(f'<text x="{cx + 10:.1f}" y="{y(value.total) + 4:.1f}" text-anchor="start" font-size="12" '
                     f'font-weight="600" fill="#111827">{value.total}</text>')  # beside the top point, never clipped
    parts.extend(_legend(labels))
    parts.append("</svg>")
    return "".join(parts)


def _step_area(points: Sequence[SeriesPoint], lower: list[int], upper: list[int],
               fx: Callable[[datetime], float], fy: Callable[[float], float]) -> str:
    ats = [p.at for p in points]
    top: list[str] = []
    for i, at in enumerate(ats):
        nxt = ats[i + 1] if i + 1 < len(ats) else at
        top.append(f"{fx(at):.1f},{fy(upper[i]):.1f} {fx(nxt):.1f},{fy(upper[i]):.1f}")
    bottom: list[str] = []
    for i in range(len(ats) - 1, -1, -1):
        nxt = ats[i + 1] if i + 1 < len(ats) else ats[i]
        bottom.append(f"{fx(nxt):.1f},{fy(lower[i]):.1f} {fx(ats[i]):.1f},{fy(lower[i]):.1f}")
    return "M" + " L".join(top + bottom) + " Z"


def _month_ticks(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """Axis ticks: month starts, or every Monday when the span is too short for months to tell much."""
    local = start.astimezone(zone)
    if end - start <= timedelta(days=62):
        day = local.date() + timedelta(days=(7 - local.weekday()) % 7)
        weeks: list[tuple[datetime, str]] = []
        while (tick := datetime.combine(day, time(0), tzinfo=zone)) <= end:
            weeks.append((tick, day.strftime("%m-%d")))
            day += timedelta(days=7)
        return weeks
    year, month = local.year, local.month
    out: list[tuple[datetime, str]] = []
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    every = 1 if months <= 13 else 3 if months <= 40 else 12
    while True:
        tick = datetime(year, month, 1, tzinfo=zone)
        if tick > end:
            break
        if tick >= start and (month - 1) % every == 0:
            out.append((tick, f"{year}-{month:02d}" if month == 1 or not out else f"{month:02d}"))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


def _legend(labels: dict[str, str]) -> list[str]:
    parts = []
    for row, sev in enumerate(SEVERITY_ORDER):
        yy = _TOP + 6 + row * 18
        parts.append(f'<rect x="{_W - _RIGHT + 14}" y="{yy}" width="12" height="12" fill="{COLOURS[sev]}"/>')
        parts.append(f'<text x="{_W - _RIGHT + 32}" y="{yy + 10}" font-size="12" fill="#111827">'
                     f'{_e(labels.get(sev, sev))}</text>')
    return parts


def certificate_chart(
    certs: Sequence[tuple[str, CertificateEntry]], *, warn_days: int, title: str, expired_label: str,
    days_label: str,
) -> str:
    """One bar per certificate: days left at the report's moment (red when expired, amber when soon)."""
    if not certs:
        return ""
    shown = list(certs[:40])  # the soonest 40: a longer list belongs in the table, not a chart
    row_h, label_w, width = 20, 250, _W
    height = _TOP + row_h * len(shown) + 34
    lo = min(min(c.days_left for _, c in shown), 0)
    hi = max(max(c.days_left for _, c in shown), warn_days, 1)
    plot_w = width - label_w - 70
    span = hi - lo

    def x(days: float) -> float:
        return label_w + (days - lo) / span * plot_w

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img" '
             f'aria-label="{_e(title)}"><title>{_e(title)}</title>']
    for i, (asset, cert) in enumerate(shown):
        yy = _TOP + i * row_h
        colour = COLOURS["critical"] if cert.days_left < 0 else (
            COLOURS["medium"] if cert.days_left <= warn_days else "#16a34a")
        a, b = sorted((x(0), x(cert.days_left)))
        label = f"{asset} {cert.address}"
        parts.append(f'<text x="{label_w - 8}" y="{yy + 14}" text-anchor="end" font-size="11" fill="#111827">'
                     f'{_e(label[:42])}</text>')
        parts.append(f'<rect x="{a:.1f}" y="{yy + 3}" width="{max(b - a, 1.5):.1f}" height="{row_h - 6}" '
                     f'fill="{colour}"><title>{_e(label)}: {cert.days_left}</title></rect>')
        note = f"{cert.days_left}" + (f" ({expired_label})" if cert.days_left < 0 else "")
        parts.append(f'<text x="{max(a, b) + 4:.1f}" y="{yy + 14}" font-size="11" fill="#374151">{_e(note)}</text>')
    bottom = _TOP + row_h * len(shown)
    parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{_TOP - 4}" y2="{bottom + 4}" stroke="#111827"/>')
    parts.append(f'<line x1="{x(warn_days):.1f}" x2="{x(warn_days):.1f}" y1="{_TOP - 4}" y2="{bottom + 4}" '
                 f'stroke="{COLOURS["medium"]}" stroke-dasharray="4 3"/>')
    for days in sorted({lo, 0, warn_days, hi}):
        parts.append(f'<text x="{x(days):.1f}" y="{bottom + 20}" text-anchor="middle" font-size="11" '
                     f'fill="#374151">{days}</text>')
    parts.append(f'<text x="{width - 4}" y="{bottom + 20}" text-anchor="end" font-size="11" fill="#374151">'
                 f'{_e(days_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _frame(title: str, css: str, top: int, y: Callable[[float], float], plot_w: float) -> list[str]:
    """The chart's opening tag with its title, and the value grid lines with their labels."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" class="{css}" role="img" '
             f'aria-label="{_e(title)}"><title>{_e(title)}</title>']
    for tick in _ticks(top):
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#e5e7eb" stroke-width="1"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#374151">{tick}</text>')
    return parts
