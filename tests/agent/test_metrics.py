"""``[metrics] listen``: a real Prometheus scrapes a running ``posture run``; the exposition parses.

The daemon scans one loopback TLS service whose certificate it does not trust (no ca_bundle), so
a scan stores open findings; Prometheus's HTTP API must then report them as posture_findings_open.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import parse_config
from agent.errors import ConfigError
from state.store import Store
from state.views import FindingFilter
from tests.agent.daemon_lab import ROOT, Agent, Db, Lab, asset_toml, make_lab, wait_for
from tests.support.prometheus import prometheus
from tests.support.servers import closed_port

A = "a.daemon.test"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("metrics-lab")) as made:
        yield made


def config(lab: Lab, asset: str, listen: str | None, every: str = "3s") -> str:
    metrics = f'[metrics]\nlisten = "{listen}"\n\n' if listen else ""
    return (f'[agent]\nresolver = "{lab.dns}"\nrequest_timeout = 20\n\n'
            f'[schedule]\nscan_every = "{every}"\njitter = "0"\n\n{metrics}{asset}')


def scrape(listen: str) -> str:
    with OPENER.open(f"http://{listen}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
    return text


def test_prometheus_scrapes_open_findings_from_a_running_daemon(lab: Lab, tmp_path: Path, store_url: str) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    db = store_url
    with lab.gates(A) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config(lab, asset_toml(A, g[A]), listen))
        agent = Agent(tmp_path, cfg, db).start()
        store = Db(db)
        try:
            wait_for("a complete scan", lambda: store.complete(A), timeout=30, agents=(agent,))
            opened = store.store.findings(FindingFilter.OPEN, A)
            assert opened, "the untrusted certificate should give open findings"
            expected = {(f.check_id, f.severity) for f in opened}
            with prometheus(tmp_path / "prom", [listen]) as prom:
                def series() -> list[dict[str, Any]]:
                    return prom.query(f'posture_findings_open{{asset="{A}"}}')

                got = wait_for("the open-findings series in Prometheus", series, timeout=30, agents=(agent,))
                assert {(s["metric"]["check"], s["metric"]["severity"]) for s in got} == expected
                assert sum(float(s["value"][1]) for s in got) == len(opened)
                assert all(s["metric"]["job"] == "posture" for s in got)
                up = prom.query('up{job="posture"}')
                assert [float(s["value"][1]) for s in up] == [1.0]
                ok = wait_for("cadence ok", lambda: prom.query(f'posture_cadence_state{{asset="{A}",state="ok"}} == 1'),
                              timeout=20, agents=(agent,))
                assert len(ok) == 1
                runs = wait_for("probe runs", lambda: prom.query('posture_probe_runs_total{probe="tls",outcome="ok"}'),
                                timeout=20, agents=(agent,))
                assert float(runs[0]["value"][1]) >= 1
                age = prom.query(f'posture_asset_last_complete_scan_age_seconds{{asset="{A}"}}')
                assert len(age) == 1 and 0 <= float(age[0]["value"][1]) < 600
                assert prom.query("process_resident_memory_bytes")  # the usual process metrics

            # The exposition itself parses with the client library's parser; labels stay bounded.
            text = scrape(listen)
            families = {f.name: f for f in text_string_to_metric_families(text)}
            for name in ("posture_findings_open", "posture_findings_overdue", "posture_cadence_state",
                         "posture_scans", "posture_probe_runs", "posture_scan_duration_seconds",
                         "posture_notification_deliveries", "posture_job_queue_depth", "process_cpu_seconds"):
                assert name in families, name
            assert families["posture_scans"].type == "counter"
            assert families["posture_scan_duration_seconds"].type == "histogram"
            labels = {k for f in families.values() for s in f.samples for k in s.labels}
            assert not labels & {"key", "url", "finding", "id"}
            for f in opened:
                assert f.key not in text  # never a finding key
            assert agent.stop() == 0
        finally:
            agent.cleanup()
            store.close()
    # Stopped: the port is closed again.
    with pytest.raises(OSError):
        scrape(listen)


def test_port_in_use_is_a_one_line_error(lab: Lab, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy, lab.gates(A) as g:
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config(lab, asset_toml(A, g[A]), listen))
        agent = Agent(tmp_path, cfg, f"sqlite:///{tmp_path / 'p.db'}").start()
        try:
            assert agent.wait(30) == 2
        finally:
            agent.cleanup()
    lines = agent.lines()
    assert lines[-1].startswith("posture: [metrics] listen") and "cannot listen" in lines[-1], agent.log()
    assert "Traceback" not in agent.log()


def test_metrics_off_never_imports_the_client_library() -> None:
    code = ("import sys; from agent.config import parse_config; import agent.scheduling.daemon; "
            "import agent.monitoring.hooks as h; cfg = parse_config(''); "
            "assert h.start_metrics(cfg.metrics.listen, None, lambda: cfg, None, None) is None; "
            "assert 'prometheus_client' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("bad", ["9464", "localhost", "127.0.0.1:0", "127.0.0.1:70000", "[::1]9464", "[nope]:1",
                                 "http://x:1", "a b:1"])
def test_bad_listen_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        parse_config(f'[metrics]\nlisten = "{bad}"\n')


def test_good_listen_values() -> None:
    for good in ("127.0.0.1:9464", "[::1]:9464", "localhost:9464", "0.0.0.0:1"):
        assert parse_config(f'[metrics]\nlisten = "{good}"\n').metrics.listen == good


def test_state_gauges_on_both_databases(store_url: str) -> None:
    """The scrape-time collector reads open, overdue findings and cadence on SQLite and PostgreSQL."""
    from prometheus_client import generate_latest

    from agent.monitoring.metrics import Metrics
    from tests.state.factory import T0, finding, run, scan

    cfg = parse_config('[remediation]\nhigh = 30\n\n[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n')
    now = T0 + timedelta(days=40)
    with Store.open(store_url) as store:
        from agent.scanning.service import register_assets

        register_assets(store, cfg.asset_specs(), T0 - timedelta(days=1))
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443"),
                                        finding("tls.cert.weak_key", "www:443", "medium"))]))
        m = Metrics.build(store, lambda: cfg, lambda: now, lambda: 0)
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("posture_findings_open", (("asset", "www"), ("check", "tls.cert.untrusted"),
                                              ("severity", "high")))] == 1
    assert samples[("posture_findings_open", (("asset", "www"), ("check", "tls.cert.weak_key"),
                                              ("severity", "medium")))] == 1
    # high: 30 days, so overdue at day 40; medium: 90 days, not yet.
    assert samples[("posture_findings_overdue", (("asset", "www"), ("severity", "high")))] == 1
    assert ("posture_findings_overdue", (("asset", "www"), ("severity", "medium"))) not in samples
    assert samples[("posture_cadence_state", (("asset", "www"), ("state", "ok")))] == 1
    age = samples[("posture_asset_last_complete_scan_age_seconds", (("asset", "www"),))]
    assert age == pytest.approx((now - (T0 + timedelta(seconds=30))).total_seconds())
    assert samples[("posture_storage_read_ok", ())] == 1
    assert samples[("posture_asset_scan_time_in_future", (("asset", "www"),))] == 0
    # The clock went back below the stored scan: flagged, not an age of 0 that looks healthy.
    with Store.open(store_url) as store:
        m = Metrics.build(store, lambda: cfg, lambda: T0 - timedelta(days=3), lambda: 0)
        text = generate_latest(m.registry).decode()
    assert 'posture_asset_scan_time_in_future{asset="www"} 1.0' in text


def test_recorder_counts_scans_probe_errors_and_deliveries(sqlite_url: str) -> None:
    from prometheus_client import generate_latest

    from agent.monitoring.metrics import Metrics
    from agent.notify.dispatch import Delivery
    from state.delivery_views import DeliveryEvent
    from state.records import RunStatus
    from tests.state.factory import T0, run, scan

    cfg = parse_config("")
    with Store.open(sqlite_url) as store:
        m = Metrics.build(store, lambda: cfg, lambda: T0, lambda: 2)
        m.recorder.scan(scan(T0, [run("tls"), run("http", status=RunStatus.ERROR),
                                  run("ports", status=RunStatus.SKIPPED)]))
        m.recorder.deliveries([Delivery("mailto://ops@…", DeliveryEvent.ALERT, 3, True),
                               Delivery("json://hook", DeliveryEvent.DIGEST, 1, False, "HTTP 500")])
        m.recorder.queue(4)
        text = generate_latest(m.registry).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("posture_scans_total", (("asset", "www"), ("status", "partial")))] == 1
    assert samples[("posture_probe_runs_total", (("outcome", "ok"), ("probe", "tls")))] == 1
    assert samples[("posture_probe_runs_total", (("outcome", "skipped"), ("probe", "ports")))] == 1
    assert samples[("posture_probe_errors_total", (("kind", "connect"), ("probe", "http")))] == 1
    assert samples[("posture_probe_duration_seconds_count", (("probe", "http"),))] == 1
    assert ("posture_probe_duration_seconds_count", (("probe", "ports"),)) not in samples  # skipped: no time
    assert samples[("posture_scan_duration_seconds_sum", (("status", "partial"),))] == 30
    assert samples[("posture_notification_deliveries_total", (("event", "alert"),))] == 1
    assert samples[("posture_notification_failures_total", (("event", "digest"),))] == 1
    assert samples[("posture_job_queue_depth", ())] == 4
    assert samples[("posture_jobs_running", ())] == 2
    assert "hook" not in text and "ops@" not in text  # channels are never labels


def test_a_failing_read_is_a_zero_gauge_not_a_broken_endpoint(tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    from prometheus_client import generate_latest

    from agent.monitoring.metrics import Metrics
    from tests.state.factory import T0

    cfg = parse_config('[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n')
    with Store.open(f"sqlite:///{tmp_path / 'p.db'}") as store:
        from agent.scanning.service import register_assets

        register_assets(store, cfg.asset_specs(), T0)
        m = Metrics.build(store, lambda: cfg, lambda: T0, lambda: 0, cache=0)
        with store.engine.begin() as conn:  # a database the agent can no longer read
            conn.exec_driver_sql("ALTER TABLE findings RENAME TO findings_elsewhere")
        first = generate_latest(m.registry).decode()
        second = generate_latest(m.registry).decode()
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE findings_elsewhere RENAME TO findings")
        third = generate_latest(m.registry).decode()
    for text in (first, second):
        assert "posture_storage_read_ok 0.0" in text and "posture_cadence_state{" not in text
        assert "posture_jobs_running 0.0" in text and "process_cpu_seconds_total" in text
    assert "posture_storage_read_ok 1.0" in third and 'posture_cadence_state{asset="www"' in third
    err = capfd.readouterr().err
    assert err.count("metrics: cannot read the state") == 1 and err.count("works again") == 1, err


def test_scrapes_within_the_cache_read_the_database_once(sqlite_url: str) -> None:
    from prometheus_client import generate_latest

    from agent.monitoring.metrics import Metrics
    from tests.state.factory import T0, finding, run, scan

    cfg = parse_config('[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n')
    with Store.open(sqlite_url) as store:
        cached = Metrics.build(store, lambda: cfg, lambda: T0, lambda: 0, cache=3600)
        fresh = Metrics.build(store, lambda: cfg, lambda: T0, lambda: 0, cache=0)
        assert "posture_findings_open{" not in generate_latest(cached.registry).decode()
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443"))]))
        assert "posture_findings_open{" not in generate_latest(cached.registry).decode()  # served from the cache
        assert 'posture_findings_open{asset="www"' in generate_latest(fresh.registry).decode()
