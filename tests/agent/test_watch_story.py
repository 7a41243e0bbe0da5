"""Issue 18 story: the phishing and impersonation watch against a real dnsmasq on loopback.

The DNS server serves the firm's zone (SPF, DMARC) and registered lookalikes (A only, A+MX, one
allow-listed, one that disappears later) with no forwarding; alerts go to a local Apprise sink.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from tests.support.dnsserver import DnsServer
from tests.support.sinks import http_sink

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
ZONES = ("com.tw", "tw", "com", "net", "xn--kpry57d")
FIRM = "broker.com.tw"
A_ONLY = "broker.com"  # a TLD swap, web only
WITH_MX = "broker-login.com.tw"  # an added word, and it takes mail
ALLOWED = "broker.tw"  # the firm's own
HOMOGLYPH = "xn--brker-kye.com.tw"  # brоker.com.tw with a Cyrillic о; taken down later
UNRELATED = "example.com.tw"  # registered, but no lookalike of the firm's name


def server(*, homoglyph: bool = True, dmarc: str | None = "v=DMARC1; p=none; rua=mailto:d@broker.com.tw",
           port: int = 0) -> DnsServer:
    records = {FIRM: "127.0.0.10", A_ONLY: "127.0.0.11", WITH_MX: "127.0.0.12", ALLOWED: "127.0.0.13",
               UNRELATED: "127.0.0.14", f"mail.{WITH_MX}": "127.0.0.12"}
    if homoglyph:
        records[HOMOGLYPH] = "127.0.0.15"
    extra = [f"--mx-host={WITH_MX},mail.{WITH_MX},10", f'--txt-record={FIRM},v=spf1 ip4:127.0.0.10 -all']
    if dmarc is not None:
        extra.append(f'--txt-record=_dmarc.{FIRM},{dmarc}')
    s = DnsServer(records, zones=ZONES, extra_args=extra)
    if port:
        s.port = port
        import subprocess

        s.proc = subprocess.Popen(s.args(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert s._wait_ready(), "dnsmasq did not restart on its port"
        return s
    return s.start()


@contextmanager
def running(**kw: Any) -> Iterator[DnsServer]:
    s = server(**kw)
    try:
        yield s
    finally:
        s.stop()


def write_config(tmp_path: Path, resolver: str, notify: str) -> Path:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(
        f'[agent]\nresolver = "{resolver}"\n\n[schedule]\ndigest = "off"\n\n'
        f'[watch]\ndomains = ["{FIRM}"]\nallow = ["{ALLOWED}"]\nevery = "1d"\nrate = 5000\nconcurrency = 32\n'
        f'timeout = 2\n\n[[notify]]\nurl = "{notify}"\nevents = ["alert"]\nlanguage = "en"\n'
    )
    return cfg


def cli(capsys: pytest.CaptureFixture[str], cfg: Path, db: str, at: datetime, *args: str) -> tuple[int, Any, str]:
    code = main(["--config", str(cfg), "--db", db, "--now", at.isoformat(), *args])
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except json.JSONDecodeError:
        return code, out, err


def found(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    (scan,) = doc["scans"]
    return {(f["check_id"], f["key"]): f for f in scan["findings"]}


def states(capsys: pytest.CaptureFixture[str], cfg: Path, db: str, at: datetime) -> dict[tuple[str, str], str]:
    code, doc, err = cli(capsys, cfg, db, at, "findings", "--status", "all", "--format", "json")
    assert code == 0, err
    return {(f["check_id"], f["key"]): f["state"] for f in doc["findings"] if f["asset"] == f"watch:{FIRM}"}


def test_watch_story(tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink:
        dns = server()
        try:
            cfg = write_config(tmp_path, dns.address, sink.url("json"))
            code, doc, err = cli(capsys, cfg, store_url, T0, "watch", "--format", "json")
            assert code == 0, err
            got = found(doc)
            (scan,) = doc["scans"]
            assert scan["status"] == "complete" and scan["asset"] == f"watch:{FIRM}"
            assert set(got) == {("phishing.lookalike", A_ONLY), ("phishing.lookalike", WITH_MX),
                                ("phishing.lookalike", HOMOGLYPH), ("email.dmarc.weak", FIRM)}, got
            assert got[("phishing.lookalike", A_ONLY)]["severity"] == "medium"
            assert got[("phishing.lookalike", WITH_MX)]["severity"] == "high"
            assert got[("phishing.lookalike", WITH_MX)]["evidence"]["records"]["MX"] == [f"10 mail.{WITH_MX}"]
            assert got[("phishing.lookalike", HOMOGLYPH)]["evidence"]["unicode"] == "brоker.com.tw"
            assert "p=none" in got[("email.dmarc.weak", FIRM)]["evidence"]["records"][0]
            look = scan["observations"]["lookalike"]
            decisions = {r["domain"]: r["decision"] for r in look["registered"]}
            assert decisions[ALLOWED].startswith("allowed")
            assert UNRELATED not in decisions and look["candidates"] > 100
            assert scan["observations"]["mail"]["spf"]["verdict"] == "ok"
            lines = [ln for m in sink.messages() for ln in str(m["message"]).splitlines()]
            for name in (A_ONLY, WITH_MX, HOMOGLYPH):  # one alert item per new lookalike
                assert sum(f"(phishing.lookalike) {name} #" in ln for ln in lines) == 1, (name, lines)
            assert not any(ALLOWED + " #" in ln or UNRELATED in ln for ln in lines), lines
            first_alerts = len(sink.posts)
            assert first_alerts >= 1

            # Day 2: the homoglyph is taken down, DMARC moves to reject; dnsmasq restarts.
            port = dns.port
            dns.stop()
            dns = server(homoglyph=False, dmarc="v=DMARC1; p=reject", port=port)
            code, doc, err = cli(capsys, cfg, store_url, T0 + timedelta(days=1), "watch", "--format", "json")
            assert code == 0, err
            assert set(found(doc)) == {("phishing.lookalike", A_ONLY), ("phishing.lookalike", WITH_MX)}
            st = states(capsys, cfg, store_url, T0 + timedelta(days=1))
            assert st[("phishing.lookalike", HOMOGLYPH)] == "fixed"
            assert st[("email.dmarc.weak", FIRM)] == "fixed"
            assert st[("phishing.lookalike", A_ONLY)] == "open"
            assert len(sink.posts) == first_alerts, "a lookalike already known is not alerted again"

            # Day 3: the DMARC record is removed altogether.
            dns.stop()
            dns = server(homoglyph=False, dmarc=None, port=port)
            code, doc, err = cli(capsys, cfg, store_url, T0 + timedelta(days=2), "watch", "--format", "json")
            assert code == 0, err
            assert ("email.dmarc.missing", FIRM) in found(doc)
            assert len(sink.posts) == first_alerts + 1
            assert "email.dmarc.missing" in json.dumps(sink.messages()[-1]) or "DMARC" in json.dumps(
                sink.messages()[-1])
        finally:
            dns.stop()

        # Day 4: the resolver is down. Nothing is proved fixed; the watch says it failed.
        code, doc, err = cli(capsys, cfg, store_url, T0 + timedelta(days=3), "watch", "--format", "json")
        assert code == 1 and "failed" in err
        (scan,) = doc["scans"]
        assert scan["status"] == "failed" and scan["findings"] == []
        st = states(capsys, cfg, store_url, T0 + timedelta(days=3))
        assert st[("phishing.lookalike", A_ONLY)] == "open"
        assert st[("phishing.lookalike", WITH_MX)] == "open"
        assert st[("email.dmarc.missing", FIRM)] == "open"


def test_watch_without_domains_is_a_usage_error(tmp_path: Path, sqlite_url: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[agent]\nresolver = "127.0.0.1:9"\n')
    code, _, err = cli(capsys, cfg, sqlite_url, T0, "watch")
    assert code == 2 and err.startswith("posture: ") and "[watch] domains" in err and "Traceback" not in err


def test_run_once_watches_when_due_and_the_digest_lists_lookalikes(
        tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink, running() as dns:
        cfg = write_config(tmp_path, dns.address, sink.url("json"))
        code, doc, err = cli(capsys, cfg, store_url, T0, "run", "--once", "--format", "json")
        assert code == 0, err
        watched = [s for s in doc["scans"] if s["asset"] == f"watch:{FIRM}"]
        assert len(watched) == 1 and watched[0]["status"] == "complete" and len(watched[0]["opened"]) == 4
        assert any(A_ONLY in json.dumps(m) for m in sink.messages()), "new lookalikes are alerted"
        code, doc, err = cli(capsys, cfg, store_url, T0 + timedelta(hours=6), "run", "--once", "--format", "json")
        assert code == 0, err
        assert not [s for s in doc["scans"] if s["asset"] == f"watch:{FIRM}"], "not due again for a day"
        code, text, err = cli(capsys, cfg, store_url, T0 + timedelta(hours=7), "digest", "--lang", "en")
        assert code == 0, err
        assert WITH_MX in text and f"watch:{FIRM}" in text


def test_report_has_a_watch_section_with_records_and_decisions(
        tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink, running() as dns:
        cfg = write_config(tmp_path, dns.address, sink.url("json"))
        code, doc, err = cli(capsys, cfg, store_url, T0, "watch", "--format", "json")
        assert code == 0, err
        ids = {f["key"]: f["id"] for f in doc["scans"][0]["findings"]}
    at = T0 + timedelta(hours=1)
    code, _, err = cli(capsys, cfg, store_url, at, "findings", "accept", str(ids[A_ONLY]),
                       "--reason", "owned by us: bought for brand protection", "--until", "2026-12-31", "--by", "ciso")
    assert code == 0, err
    at += timedelta(minutes=5)  # the report's states are as of its moment: after the acceptance
    code, rep, err = cli(capsys, cfg, store_url, at, "report", "--from", "2026-01-01", "--to", "2026-06-30",
                         "--format", "json", "--lang", "en")
    assert code == 0, err
    (w,) = rep["watch"]
    assert w["domain"] == FIRM and w["candidates"] > 100
    rows = {r["domain"]: r for r in w["registered"]}
    assert set(rows) == {A_ONLY, WITH_MX, ALLOWED, HOMOGLYPH}
    assert rows[ALLOWED]["decision"].startswith("allowed") and "finding" not in rows[ALLOWED]
    assert rows[A_ONLY]["finding"]["state"] == "accepted" and "owned by us" in rows[A_ONLY]["finding"]["reason"]
    assert rows[WITH_MX]["records"]["MX"] == [f"10 mail.{WITH_MX}"] and rows[WITH_MX]["finding"]["severity"] == "high"
    assert w["mail"]["dmarc"]["verdict"] == "weak" and "p=none" in w["mail"]["dmarc"]["records"][0]
    code, html, err = cli(capsys, cfg, store_url, at, "report", "--from", "2026-01-01", "--to", "2026-06-30",
                          "--format", "html", "--lang", "en")
    assert code == 0, err
    assert "Phishing and impersonation watch" in html and "brоker.com.tw" in html and "owned by us" in html


def test_allow_listing_a_reported_lookalike_resolves_it_by_configuration(
        tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink, running() as dns:
        cfg = write_config(tmp_path, dns.address, sink.url("json"))
        code, _, err = cli(capsys, cfg, sqlite_url, T0, "watch", "--format", "json")
        assert code == 0, err
        cfg.write_text(cfg.read_text().replace(f'allow = ["{ALLOWED}"]', f'allow = ["{ALLOWED}", "{A_ONLY}"]'))
        code, doc, err = cli(capsys, cfg, sqlite_url, T0 + timedelta(days=1), "watch", "--format", "json")
        assert code == 0, err
        assert ("phishing.lookalike", A_ONLY) not in found(doc)
        st = states(capsys, cfg, sqlite_url, T0 + timedelta(days=1))
        # Still registered, now owned: not "fixed" (the name did not stop resolving).
        assert st[("phishing.lookalike", A_ONLY)] == "resolved_by_config"
        assert st[("phishing.lookalike", WITH_MX)] == "open"


@pytest.mark.parametrize("line", ['domains = ["not a domain"]', 'every = "sometimes"', "rate = 0"])
def test_bad_watch_config_is_one_line_exit_2(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str],
                                             line: str) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[agent]\nresolver = "127.0.0.1:9"\n\n[watch]\n{line}\n')
    code, _, err = cli(capsys, cfg, sqlite_url, T0, "watch")
    assert code == 2 and err.count("\n") == 1 and "watch" in err and "Traceback" not in err, err
