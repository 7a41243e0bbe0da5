"""Prometheus metrics of ``posture run``, with the official client library.

Two kinds: counters and histograms the daemon updates as scans finish and notifications go
out (:class:`Recorder`), and gauges read from storage at scrape time (:class:`StateCollector`:
open and overdue findings, each asset's last complete scan, its cadence state), cached
briefly so a scrape storm costs at most one read per ``CACHE`` seconds. Labels stay bounded:
the configured asset name, check IDs, severities, probe names, statuses, error kinds; never a
finding key or a URL. Process metrics come from the library's own collectors.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from agent.errors import ConfigError
from agent.monitoring.listen import parse_listen

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from agent.config import Config
    from state.store import Store

CACHE = 10.0  # seconds a storage read serves scrapes
SCAN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
OTHER = "_unconfigured"  # findings of ad-hoc scans (`posture scan URL`): one label, never their URL
_KIND = re.compile(r"[^a-z0-9_.-]")


def _bounded(text: str | None, default: str = "none") -> str:
    """An error kind or status as a label: lower-case word characters, at most 40."""
    return _KIND.sub("_", (text or default).lower())[:40] or default


class Recorder:
    """The daemon's counters: scans, probe runs, probe errors, notification sends, the queue."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scans = Counter("posture_scans", "Scans finished, by asset and status", ["asset", "status"],
                             registry=registry)
        self.scan_seconds = Histogram("posture_scan_duration_seconds", "Wall time of a scan, by status",
                                      ["status"], buckets=SCAN_BUCKETS, registry=registry)
        self.probe_runs = Counter("posture_probe_runs", "Probe runs, by probe and outcome (ok, error, skipped)",
                                  ["probe", "outcome"], registry=registry)
        self.probe_seconds = Histogram("posture_probe_duration_seconds", "Wall time of a probe run, by probe",
                                       ["probe"], buckets=SCAN_BUCKETS, registry=registry)
        self.probe_errors = Counter("posture_probe_errors", "Probe runs that failed, by probe and error kind",
                                    ["probe", "kind"], registry=registry)
        self.last_scan = Gauge("posture_last_scan_finished_timestamp_seconds",
                               "When this daemon last finished a scan (Unix time)", registry=registry)
        self.delivered = Counter("posture_notification_deliveries", "Notifications delivered, by event",
                                 ["event"], registry=registry)
        self.failed = Counter("posture_notification_failures", "Notification sends that failed, by event",
                              ["event"], registry=registry)
        self.due = Gauge("posture_job_queue_depth", "Scans due and not yet running", registry=registry)

    def scan(self, record: Any) -> None:
        status = _bounded(getattr(record.status, "value", str(record.status)))
        self.scans.labels(record.asset.name, status).inc()
        self.scan_seconds.labels(status).observe(_seconds(record.started_at, record.finished_at))
        self.last_scan.set(record.finished_at.timestamp())
        for run in record.probe_runs:
            outcome = _bounded(getattr(run.status, "value", str(run.status)))
            self.probe_runs.labels(run.probe, outcome).inc()
            if outcome != "skipped":
                self.probe_seconds.labels(run.probe).observe(_seconds(run.started_at, run.finished_at))
            if outcome == "error":
                self.probe_errors.labels(run.probe, _bounded(run.error_kind, "unknown")).inc()

    def deliveries(self, sent: Iterable[Any]) -> None:
        for d in sent:
            event = _bounded(getattr(d.event, "value", str(d.event)))
            (self.delivered if d.ok else self.failed).labels(event).inc()

    def queue(self, due: int) -> None:
        self.due.set(due)


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


@dataclass(frozen=True)
class _Snapshot:
    at: float
    metrics: list[Metric]


class StateCollector(Collector):
    """Gauges read from storage when Prometheus scrapes (at most once per ``cache`` seconds)."""

    def __init__(self, store: Store, config: Callable[[], Config], clock: Callable[[], datetime],
                 running: Callable[[], int], cache: float = CACHE) -> None:
        self.store, self.config, self.clock, self.running, self.cache = store, config, clock, running, cache
        self._lock = threading.Lock()
        self._snap: _Snapshot | None = None
        self._failing = False

    def describe(self) -> Iterator[Metric]:
        return iter(())  # so registering does not read the database (the registry calls collect otherwise)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._snap is None or time.monotonic() - self._snap.at >= self.cache:
                self._snap = _Snapshot(time.monotonic(), self._read())
            metrics = self._snap.metrics
        running = GaugeMetricFamily("posture_jobs_running", "Scans this daemon is running now")
        running.add_metric([], self.running())
        yield from metrics
        yield running

    def _read(self) -> list[Metric]:
        """The gauges, or only ``posture_storage_read_ok 0`` (and one log line) when the read fails."""
        from agent.scheduling.daemon_setup import log
        from state.errors import StoreError

        ok = GaugeMetricFamily("posture_storage_read_ok", "1 if the last read of the state for metrics worked")
        try:
            out = read_state(self.store, self.config(), self.clock())
        except StoreError as exc:
            self._failed(log, str(exc))
            ok.add_metric([], 0)
            return [ok]
        except Exception as exc:  # a bug must cost a scrape's gauges, never the endpoint or the daemon
            self._failed(log, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            ok.add_metric([], 0)
            return [ok]
        if self._failing:
            self._failing = False
            log("metrics: reading the state works again")
        ok.add_metric([], 1)
        return [*out, ok]

    def _failed(self, log: Callable[[str], None], why: str) -> None:
        if not self._failing:  # one line per outage, not one per scrape
            self._failing = True
            log(f"metrics: cannot read the state ({why}); posture_storage_read_ok is 0")


def read_state(store: Store, cfg: Config, now: datetime) -> list[Metric]:
    """The storage-derived gauges at ``now`` for the configured assets."""
    from agent.tracking.remediation import cadences, deadline_policy, deadlines
    from schedules.remediation import CadenceState, is_overdue
    from schedules.slots import in_future
    from state import history_reads
    from state.views import FindingFilter

    specs = {s.name: s for s in cfg.asset_specs()}
    open_ = store.findings(FindingFilter.OPEN, now=now)
    due = deadlines(store, deadline_policy(cfg), open_, {n: s.kind for n, s in specs.items()})
    counts: dict[tuple[str, str, str], int] = {}
    overdue: dict[tuple[str, str], int] = {}
    for f in open_:
        asset = f.asset if f.asset in specs else OTHER
        k = (asset, f.severity, f.check_id)
        counts[k] = counts.get(k, 0) + 1
        if is_overdue(due.get(f.id), now):
            overdue[(asset, f.severity)] = overdue.get((asset, f.severity), 0) + 1
    findings = GaugeMetricFamily("posture_findings_open", "Findings that still need fixing (open or reopened)",
                                 labels=["asset", "severity", "check"])
    for (asset, sev, check), n in sorted(counts.items()):
        findings.add_metric([asset, sev, check], n)
    late = GaugeMetricFamily("posture_findings_overdue", "Open findings past their remediation deadline",
                             labels=["asset", "severity"])
    for (asset, sev), n in sorted(overdue.items()):
        late.add_metric([asset, sev], n)

    assets = {a.name: a for a in store.assets() if a.name in specs}
    times = history_reads.scan_times(store)
    age = GaugeMetricFamily("posture_asset_last_complete_scan_age_seconds",
                            "Seconds since the asset's last complete full scan (absent: none yet)", labels=["asset"])
    last = GaugeMetricFamily("posture_asset_last_scan_timestamp_seconds",
                             "When the asset's last full scan started, whatever its status (Unix time)",
                             labels=["asset"])
    state = GaugeMetricFamily("posture_cadence_state", "The asset's half-yearly cadence state (1 for the current one)",
                              labels=["asset", "state"])
    left = GaugeMetricFamily("posture_cadence_remaining_seconds",
                             "Seconds until the asset's cadence deadline (negative: overdue)", labels=["asset"])
    no_room = GaugeMetricFamily("posture_cadence_no_room", "1 if quiet windows leave no time for a complete scan "
                                "before the cadence deadline", labels=["asset"])
    ahead = GaugeMetricFamily("posture_asset_scan_time_in_future", "1 if the asset's last scan is stored later "
                              "than the clock (the clock went back: its age and cadence are not to be trusted)",
                              labels=["asset"])
    for name, c in sorted(cadences(cfg, store, assets, now).items()):
        t = times.get(name)
        if t is not None and t.last_complete is not None:
            age.add_metric([name], max((now - t.last_complete).total_seconds(), 0.0))
        if t is not None and t.last_attempt is not None:
            last.add_metric([name], t.last_attempt.timestamp())
        for s in CadenceState:
            state.add_metric([name, s.value], 1 if c.cadence.state == s else 0)
        left.add_metric([name], (c.cadence.due - now).total_seconds())
        no_room.add_metric([name], 1 if c.no_room else 0)
        ahead.add_metric([name], 1 if t is not None and (in_future(t.last_complete, now)
                                                          or in_future(t.last_attempt, now)) else 0)
    return [findings, late, age, last, state, left, no_room, ahead]


class Metrics:
    """The registry, the daemon's recorder and the HTTP server; ``stop()`` closes the socket."""

    def __init__(self, registry: CollectorRegistry, recorder: Recorder, server: WSGIServer | None,
                 thread: threading.Thread | None) -> None:
        self.registry, self.recorder, self.server, self.thread = registry, recorder, server, thread

    @classmethod
    def build(cls, store: Store, config: Callable[[], Config], clock: Callable[[], datetime],
              running: Callable[[], int], cache: float = CACHE) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        recorder = Recorder(registry)
        registry.register(StateCollector(store, config, clock, running, cache))
        return cls(registry, recorder, None, None)

    @classmethod
    def serve(cls, listen: str, store: Store, config: Callable[[], Config], clock: Callable[[], datetime],
              running: Callable[[], int]) -> Metrics:
        host, port = parse_listen(listen)
        m = cls.build(store, config, clock, running)
        try:
            m.server, m.thread = start_http_server(port, addr=host, registry=m.registry)
        except OSError as exc:
            raise ConfigError(f"[metrics] listen {listen}: cannot listen ({exc.strerror or exc})") from None
        return m

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
