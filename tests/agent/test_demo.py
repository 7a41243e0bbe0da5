"""``posture demo``: the whole lab scanned end to end, the lab's parts, and the lab check."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from agent.demo.check import Verdict, check_lab, check_site
from agent.demo.lab import Lab
from agent.demo.sites import SITES, Site
from tests.support.interrupt import FOREGROUND

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = REPO / ".venv" / "bin" / "posture"  # the README's command; python -m agent where it is not
POSTURE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "agent"]

# What each site is built to show, stated here independently of agent/demo/sites.py.
EXPECTED: dict[str, set[str]] = {
    "clean-site": set(),
    "expired-cert": {"tls.cert.expired"},
    "legacy-tls": {"tls.protocol.legacy"},
    "no-waf": {"edge.waf.absent", "edge.cdn.absent"},
    "debug-page": {"leak.debug_page"},
    "social-link": {"social.link.no_warning"},
    "open-port": {"ports.unexpected_open"},
}


# ---------------------------------------------------------------- the demo, end to end


def _private_network(argv: list[str]) -> list[str]:
    """Run ``argv`` in a network namespace of its own (loopback only), as CI runs the suite."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return argv  # not root: the suite itself is what runs without a network (scripts/test.sh)
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def _leftovers(session_id: int, needles: list[str]) -> list[str]:
    """Processes still in the demo's session, or whose command line names its files or addresses."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            sid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[4])
        except (OSError, ValueError, IndexError):
            continue
        if cmdline and (sid == session_id or any(n in cmdline for n in needles)):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("demo")
    db = f"sqlite:///{tmp / 'demo.db'}"
    report = tmp / "evidence.html"
    env = {**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1"}
    started = time.monotonic()
    proc = subprocess.Popen(
        _private_network([*POSTURE, "demo", "--db", db, "--report", str(report)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    elapsed = time.monotonic() - started
    prefix = re.search(r"lab is up on (127\.\d+\.\d+)\.0/24", out)
    return {"code": proc.returncode, "out": out, "err": err, "elapsed": elapsed, "db": db, "report": report,
            "tmp": tmp, "pid": proc.pid, "prefix": prefix.group(1) if prefix else None}


def test_demo_exits_0_within_a_minute(demo: dict[str, Any]) -> None:
    assert demo["code"] == 0, f"stdout:\n{demo['out']}\nstderr:\n{demo['err']}"
    assert demo["elapsed"] < 60, f"the demo took {demo['elapsed']:.1f}s"
    assert "Traceback" not in demo["err"]


def test_every_site_shows_exactly_its_findings_and_the_clean_site_none(demo: dict[str, Any]) -> None:
    from state.store import Store
    from state.views import FindingFilter

    with Store.open(demo["db"]) as store:
        findings = store.findings(FindingFilter.ALL)
        scans = store.scans()
    found: dict[str, set[str]] = {name: set() for name in EXPECTED}
    for f in findings:
        found.setdefault(f.asset, set()).add(f.check_id)
    assert found == EXPECTED, demo["out"]
    assert not [f for f in findings if f.asset == "clean-site"]
    # every probe ran and none failed: each scan is complete, and full (it counts for the cadence)
    assert sorted(s.asset for s in scans) == sorted(EXPECTED)
    assert {(s.asset, s.status.value, s.full) for s in scans} == {(a, "complete", True) for a in EXPECTED}


def test_stdout_says_where_the_report_and_the_digest_landed(demo: dict[str, Any]) -> None:
    out, report = demo["out"], demo["report"]
    assert f"Evidence report: {report.resolve()}" in out
    html = report.read_text("utf-8")
    assert "<svg" in html and "expired-cert" in html
    landed = re.search(r"^  (\S+notification-1\.json)  \(\d+ bytes", out, re.MULTILINE)
    assert landed, out
    message = json.loads(Path(landed.group(1)).read_text("utf-8"))
    assert "digest" in message["title"].lower()
    assert "tls.cert.expired" in message["message"]
    assert "Did each site show what it was built to show?" in out
    assert out.count("\n  ok ") == len(EXPECTED), out


def test_nothing_is_left_running_and_no_key_is_left_behind(demo: dict[str, Any]) -> None:
    assert demo["prefix"] is not None
    left = _leftovers(demo["pid"], [str(demo["tmp"]), f"{demo['prefix']}."])
    assert not left, left
    workdirs = list(demo["tmp"].glob("posture-demo-*"))
    assert len(workdirs) == 1
    assert not (workdirs[0] / "certs").exists()


# ---------------------------------------------------------------- the lab's parts


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp("lab")).start()
    try:
        yield running
    finally:
        running.stop()


def _client(lab: Lab, *, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(lab.ca_bundle))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(lab: Lab, asset: str, target: str, *, tls: bool = True, port: int | None = None,
         method: str = "GET") -> tuple[int, dict[str, str], str]:
    site = lab.site(asset)
    port = port or site.port
    with socket.create_connection((site.address, port), timeout=5) as raw:
        sock: socket.socket = _client(lab, verify=False).wrap_socket(raw, server_hostname=site.site.host) \
            if tls else raw
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: {site.site.host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _query(lab: Lab, name: str, rdtype: str) -> dns.message.Message:
    host, port = lab.resolver.split(":")
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=int(port), timeout=2)


def test_dns_answers_the_lab_names_only(lab: Lab) -> None:
    www = lab.site("clean-site")
    answer = _query(lab, "WWW.lab.posture.test.", "A")
    assert [rr.to_text() for rrset in answer.answer for rr in rrset] == [www.address]
    aaaa = _query(lab, "www.lab.posture.test.", "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and not aaaa.answer
    assert _query(lab, "example.com.", "A").rcode() == dns.rcode.NXDOMAIN


def test_certificates_verify_against_the_lab_ca_except_the_expired_one(lab: Lab) -> None:
    for asset, ok in (("clean-site", True), ("expired-cert", False)):
        site = lab.site(asset)
        with socket.create_connection((site.address, site.port), timeout=5) as raw:
            if ok:
                with _client(lab).wrap_socket(raw, server_hostname=site.site.host) as tls:
                    assert tls.version() in ("TLSv1.2", "TLSv1.3")
            else:
                with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
                    _client(lab).wrap_socket(raw, server_hostname=site.site.host)


def test_only_the_legacy_gateway_accepts_tls_1_0(lab: Lab) -> None:
    assert lab.legacy_tls_note() is None
    ctx = _client(lab, verify=False)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 on purpose
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    clean = lab.site("clean-site")
    with socket.create_connection((clean.address, clean.port), timeout=5) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname=clean.site.host)


def test_the_sites_answer_as_built(lab: Lab) -> None:
    status, headers, body = _get(lab, "clean-site", "/")
    assert status == 200 and headers["strict-transport-security"].startswith("max-age=31536000")
    assert "x-amz-cf-id" in headers and headers["server"] == "posture-lab"
    assert 'onclick="return confirm(' in body
    status, headers, _ = _get(lab, "clean-site", "/?id=1%27%20OR%20%271%27%3D%271")
    assert status == 403
    status, headers, _ = _get(lab, "clean-site", "/x", tls=False, port=lab.http_port)
    assert status == 301 and headers["location"] == f"{lab.site('clean-site').url}x"
    assert _get(lab, "no-waf", "/?id=1%27%20OR%20%271%27%3D%271")[0] == 200
    status, _, body = _get(lab, "debug-page", "/missing.php")
    assert status == 404 and "DEBUG = True" in body and "SIMULATED" in body
    status, _, body = _get(lab, "clean-site", "/missing.php")
    assert status == 404 and "DEBUG" not in body and len(body) < 1000
    assert _get(lab, "clean-site", "/", method="POSTURE")[0] == 405
    assert 'href="https://www.facebook.com/' in _get(lab, "social-link", "/")[2]


def test_the_stray_port_is_open_on_the_open_port_site_only(lab: Lab) -> None:
    with socket.create_connection((lab.site("open-port").address, lab.stray_port), timeout=2):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((lab.site("clean-site").address, lab.stray_port), timeout=2)


def test_the_sink_keeps_what_is_posted(lab: Lab) -> None:
    assert lab.sink is not None
    body = json.dumps({"title": "t", "message": "t\nhello"}).encode()
    with socket.create_connection(("127.0.0.1", lab.sink.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 5
    while not lab.sink.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lab.sink.received[-1].path.read_bytes() == body
    assert lab.sink.received[-1].summary() == "t | hello"


def test_stop_joins_every_thread_and_frees_every_port(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    lab = Lab(tmp_path).start()
    site = lab.site("clean-site")
    with socket.create_connection((site.address, site.port), timeout=2):  # a connection left open
        lab.stop()
    # nothing this lab started is left (threads of other tests may have ended meanwhile)
    assert not set(threading.enumerate()) - before, set(threading.enumerate()) - before
    for address, port in ((site.address, site.port), (site.address, lab.http_port),
                          (lab.site("open-port").address, lab.stray_port)):
        with socket.socket() as s:  # free: only TIME_WAIT remnants of closed connections are left
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
            s.listen()


_KEEP = FOREGROUND + """
import pathlib, sys
from agent.commands.demo import keep_running
from agent.demo.lab import Lab
lab = Lab(pathlib.Path(sys.argv[1])).start()
try:
    keep_running(lab, pathlib.Path(sys.argv[1]) / "posture-demo.toml", "sqlite:///demo.db")
finally:
    lab.stop()
print("lab stopped", flush=True)
"""


def test_keep_explains_how_to_reach_the_lab_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import signal

    proc = subprocess.Popen([sys.executable, "-c", _KEEP, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        said = ""
        while "Press Ctrl-C" not in said:
            line = proc.stdout.readline()
            assert line, f"exited early: {said}{proc.stderr.read() if proc.stderr else ''}"
            said += line
        curl = re.search(r"curl --cacert (\S+) --resolve ([^:]+):(\d+):(\S+) (https://\S+)", said)
        assert curl, said
        cafile, host, port, address, url = curl.groups()
        assert url == f"https://{host}:{port}/"
        ctx = ssl.create_default_context(cafile=cafile)  # what curl would do: verify name and chain
        with socket.create_connection((address, int(port)), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            assert tls.recv(12) == b"HTTP/1.1 200"
        assert "posture --config" in said
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # that it stops, not how fast: a loaded machine is slow
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "lab stopped" in out
    with socket.socket() as s:  # the lab's port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, int(port)))


# ---------------------------------------------------------------- the lab check (pure)


def _doc(asset: str, *checks: str, status: str = "complete") -> dict[str, Any]:
    return {"asset": asset, "status": status, "findings": [{"check_id": c} for c in checks], "errors": []}


SITE = {s.asset: s for s in SITES}


@pytest.mark.parametrize(
    ("site", "doc", "skipped", "verdict"),
    [
        (SITE["clean-site"], _doc("clean-site"), None, Verdict.OK),
        (SITE["clean-site"], _doc("clean-site", "http.hsts.missing"), None, Verdict.EXTRA),
        (SITE["no-waf"], _doc("no-waf", "edge.cdn.absent", "edge.waf.absent"), None, Verdict.OK),
        (SITE["no-waf"], _doc("no-waf", "edge.waf.absent"), None, Verdict.MISSING),
        (SITE["open-port"], _doc("open-port"), "nmap is not installed", Verdict.SKIPPED),
        (SITE["open-port"], _doc("open-port", "ports.unexpected_open"), "nmap is not installed", Verdict.OK),
        (SITE["open-port"], _doc("open-port", "leak.sql_error"), "nmap is not installed", Verdict.EXTRA),
        (SITE["debug-page"], _doc("debug-page", status="failed"), None, Verdict.FAILED),
        (SITE["debug-page"], None, None, Verdict.FAILED),
    ],
)
def test_check_site(site: Site, doc: dict[str, Any] | None, skipped: str | None, verdict: Verdict) -> None:
    result = check_site(site, doc, skipped)
    assert result.verdict is verdict
    assert result.passed is (verdict in (Verdict.OK, Verdict.SKIPPED))
    assert site.asset in result.line()


def test_check_lab_keeps_the_lab_order() -> None:
    docs = [_doc(s.asset, *s.expected) for s in reversed(SITES)]
    checks = check_lab(SITES, docs)
    assert [c.site.asset for c in checks] == [s.asset for s in SITES]
    assert all(c.verdict is Verdict.OK for c in checks)
    assert {s.asset: set(s.expected) for s in SITES} == EXPECTED


# ---------------------------------------------------------------- what a machine lacks is skipped, not failed


def test_without_nmap_the_ports_probe_is_skipped_with_a_note(lab: Lab, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.commands.demo import skips

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find: no nmap
    probes, skipped, notes = skips(lab)
    assert "ports" not in probes and "tls" in probes
    assert skipped == {"open-port": "nmap is not installed"}
    assert any("nmap is not installed" in n and "apt-get install nmap" in n for n in notes)


def test_a_machine_that_cannot_serve_tls_1_0_skips_the_legacy_site(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.demo.lab as lab_module
    from agent.commands.demo import skips

    # Stand-in for an OpenSSL that refuses TLS 1.0/1.1: the gateway offers only what the clean site does.
    monkeypatch.setattr(lab_module, "legacy_context", lab_module.modern_context)
    refusing = Lab(tmp_path).start()
    try:
        note = refusing.legacy_tls_note()
        _, skipped, notes = skips(refusing)
    finally:
        refusing.stop()
    assert note is not None and "TLS 1.0" in note
    assert skipped["legacy-tls"] == note
    assert any("legacy-tls site cannot show its finding" in n for n in notes)
