"""Secrets in asset, origin and database URLs never reach what posture prints, sends or writes.

Asset URLs: a password holding ``/``, ``#``, ``?`` or ``@`` is masked to the last ``@`` in every
error (``scan``, ``config check``); query values (``?api_key=``) are masked wherever an asset URL
is shown: scan output (text, JSON), the digest (text, and as sent to a channel), the report
(HTML, CSV, JSON) and ``config check``. A real HTTP server on loopback is the asset; the probe
itself still sends the query. Database URLs: a password with an unencoded ``@`` is refused
before any connection (PostgreSQL need not run: nothing listens on the port).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.targets import parse_target_url, shown_url
from state.engine import parse_url, shown_db_url
from state.errors import BadUrl
from tests.support.servers import Reply, closed_port, http_server
from tests.support.sinks import http_sink

PW = "S3cRetPW"

# A password with each character that ends a URL's user info early, and one with an unencoded @.
LEAKY_PASSWORDS = [f"{PW[:4]}/{PW[4:]}", f"{PW[:4]}#{PW[4:]}", f"{PW[:4]}?{PW[4:]}", f"{PW[:4]}@{PW[4:]}",
                   f"12/{PW}", f"12#{PW}", f"12?{PW}", f"a@b/{PW}#x"]


def _pieces(password: str) -> list[str]:
    """The parts of a password a message could show: split where the URL syntax splits it."""
    import re

    return [p for p in re.split(r"[/#?@]", password) if len(p) >= 3]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


# ---------------------------------------------------------------- asset URLs with credentials


@pytest.mark.parametrize("password", LEAKY_PASSWORDS)
def test_an_asset_password_with_url_syntax_is_never_echoed(password: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://admin:{password}@www.broker.test/"
    with pytest.raises(Exception) as info:
        parse_target_url(url)
    assert not any(p in str(info.value) for p in _pieces(password)), str(info.value)
    assert "****@www.broker.test" in str(info.value)

    code, said = _run(["--db", f"sqlite:///{tmp_path / 'p.db'}", "scan", url], capsys)
    assert code == 2 and "****@www.broker.test" in said, said
    assert not any(p in said for p in _pieces(password)), said

    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[[assets]]\nname = "www"\nurl = "{url}"\n')
    code, said = _run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 2 and "assets[0].url" in said, said
    assert not any(p in said for p in _pieces(password)), said


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://admin:S3cr/etPW@www.broker.test/", "https://****@www.broker.test/"),
        ("https://u:a@b#c?d@h.test:8443/x", "https://****@h.test:8443/x"),
        ("admin:pw/x@h.test", "****@h.test"),
        ("https://www.broker.test/", "https://www.broker.test/"),
    ],
)
def test_shown_url_masks_up_to_the_last_at(url: str, shown: str) -> None:
    assert shown_url(url) == shown


# ---------------------------------------------------------------- origins


@pytest.mark.parametrize(
    ("origin", "secret"),
    [
        ("https://cdnuser:OriginPW123@static.broker.test", "OriginPW123"),
        ("https://cdnuser:Orig/inPW123@static.broker.test", "inPW123"),
        ("https://cdnuser:12/OriginPW123@static.broker.test", "OriginPW123"),
        ("https://cdnuser:Or@iginPW123@static.broker.test", "iginPW123"),
        ("https://static.broker.test/?sig=OriginSIG456", "OriginSIG456"),
        ("https://static.broker.test/?OriginSIG456", "OriginSIG456"),
        ("https://static.broker.test/#OriginSIG456", "OriginSIG456"),
    ],
)
def test_an_origin_is_never_echoed_with_its_secret(origin: str, secret: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[[assets]]\nname = "cdn-site"\nurl = "https://www.broker.test/"\norigins = ["{origin}"]\n')
    code, said = _run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 2 and "assets[0].origins" in said and "static.broker.test" in said, said
    assert secret not in said and "cdnuser" not in said, said


# ---------------------------------------------------------------- how an asset URL is shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://www.broker.test/status?api_key=K3Y&lang=en", "https://www.broker.test/status?api_key=****&lang=****"),
        ("https://www.broker.test:8443/a/b?TOKEN#frag", "https://www.broker.test:8443/a/b?****"),
        ("https://www.broker.test/?empty=", "https://www.broker.test/?empty="),
        ("https://u:p@www.broker.test/x?k=v", "https://****@www.broker.test/x?k=****"),
        ("https://admin:12/pw@www.broker.test/x?k=v", "https://****@www.broker.test/x"),
        ("tls://order.broker.test:7001", "tls://order.broker.test:7001"),
        ("https://[::1]:8443/p?k=v", "https://[::1]:8443/p?k=****"),
        ("https://medium.test/@someone", "https://medium.test/@someone"),
    ],
)
def test_display_url(url: str, shown: str) -> None:
    from agent.targets import display_url

    assert display_url(url) == shown


def test_a_query_secret_of_an_asset_url_is_shown_nowhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "ASSETKEY789"
    with http_server({"*": Reply(200, "<html><body>status ok</body></html>")}) as site, http_sink() as sink:
        named = f"http://127.0.0.1:{site.port}/status?api_key={secret}"
        unnamed = f"http://127.0.0.1:{site.port}/health?token={secret}&x={secret}"
        cfg = tmp_path / "posture.toml"
        cfg.write_text(
            '[agent]\nallow_addresses = ["127.0.0.0/8"]\nprocesses = 1\n\n'
            f'[[notify]]\nurl = "json://127.0.0.1:{sink.port}/"\nlanguage = "en"\nevents = ["digest"]\n\n'
            f'[[assets]]\nname = "api"\nurl = "{named}"\nkind = "api"\n\n'
            f'[[assets]]\nurl = "{unnamed}"\nkind = "api"\n'  # no name: it is named by its URL
        )
        base = ["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}"]
        said: dict[str, str] = {}
        for key, args in {
            "config": ["config", "check"],
            "config_json": ["config", "check", "--format", "json"],
            "scan": ["--now", "2026-03-02T01:00:00Z", "scan", "--probe", "http"],
            "scan_json": ["--now", "2026-03-02T01:10:00Z", "scan", "--probe", "http", "--format", "json"],
            "scan_adhoc": ["--now", "2026-03-02T01:20:00Z", "scan", "--probe", "http",
                           f"http://127.0.0.1:{site.port}/?token={secret}"],
            "digest": ["--now", "2026-03-09T02:00:00Z", "digest", "--all"],
            "digest_send": ["--now", "2026-03-09T02:00:00Z", "digest", "--send", "--all"],
            "digest_json": ["--now", "2026-03-09T02:00:00Z", "digest", "--format", "json", "--all"],
            "findings": ["--now", "2026-03-09T02:00:00Z", "findings", "--status", "all", "--ad-hoc",
                         "--format", "json"],
            "findings_text": ["--now", "2026-03-09T02:00:00Z", "findings", "--status", "all", "--ad-hoc"],
            "history": ["--now", "2026-03-09T02:00:00Z", "history", "api"],
            "export_dojo": ["--now", "2026-03-09T02:00:00Z", "export", "--format", "defectdojo", "-o", "-"],
            "export_ocsf": ["--now", "2026-03-09T02:00:00Z", "export", "--format", "ocsf", "-o", "-"],
        }.items():
            code, said[key] = _run([*base, *args], capsys)
            assert code == 0, (key, said[key])
        found = json.loads(said["findings"])["findings"]
        assert found, "no finding to show"
        for f in found:
            code, said[f"show_{f['id']}"] = _run([*base, "findings", "show", str(f["id"]), "--format", "json"], capsys)
            assert code == 0
        reports = {}
        for ext in ("html", "csv", "json"):
            out = tmp_path / f"report.{ext}"
            code, said[f"report_{ext}"] = _run([*base, "--now", "2026-03-09T03:00:00Z", "report", "-o", str(out)],
                                               capsys)
            assert code == 0, said[f"report_{ext}"]
            reports[ext] = out.read_text("utf-8")
        sent = "\n".join(p.body.decode("utf-8") for p in sink.delivered)
    # the probes used the URL as configured: the query reached the server
    assert any(s.path == f"/status?api_key={secret}" for s in site.seen), [s.path for s in site.seen]
    assert sent, "the digest reached no channel"
    everything = {**said, **reports, "sent": sent}
    leaks = {key: [ln[:150] for ln in text.splitlines() if secret in ln][:2]
             for key, text in everything.items() if secret in text}
    assert not leaks, leaks
    assert "/status?api_key=****" in said["scan"] and "/status?api_key=****" in said["config"]
    scans = json.loads(said["scan_json"])["scans"]
    assert {s["target"] for s in scans} == {f"http://127.0.0.1:{site.port}/status?api_key=****",
                                            f"http://127.0.0.1:{site.port}/health?token=****&x=****"}
    assert "/status?api_key=****" in said["digest"] and "/status?api_key=****" in sent
    assert all("/status?api_key=****" in reports[ext] for ext in reports)


# ---------------------------------------------------------------- database URLs


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://posture:Db@S3cret@127.0.0.1:{port}/db", "S3cret"),
        ("postgresql+psycopg://posture:Db@S3cret/x@127.0.0.1:{port}/db", "S3cret"),
        ("postgresql+psycopg://posture:Db@S3cret?x@127.0.0.1:{port}/db", "S3cret"),
        ("postgresql+psycopg://posture:Db@S3cret#x@127.0.0.1:{port}/db", "S3cret"),
        ("postgresql+psycopg://posture:Db@S3cret:x@127.0.0.1:{port}/db", "S3cret"),
    ],
)
def test_a_database_password_with_an_unencoded_at_is_never_shown(url: str, secret: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = url.format(port=closed_port())
    assert secret not in shown_db_url(url) and shown_db_url(url) == "postgresql://****"
    with pytest.raises(BadUrl) as info:
        parse_url(url)
    assert secret not in str(info.value)

    code, said = _run(["--db", url, "findings"], capsys)
    assert code == 2 and "postgresql://****" in said and secret not in said, said
    code, said = _run(["--db", url, "config", "check"], capsys)
    assert "database: postgresql://****" in said and secret not in said, said
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[agent]\ndatabase = "{url}"\n')
    code, said = _run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 2 and "%40" in said and secret not in said, said


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://bob:pw@db.internal:5433/posture", "postgresql://db.internal:5433/posture"),
        ("postgresql+psycopg://bob:p/w?x#y@db.internal/posture", "postgresql://db.internal/posture"),
        ("postgresql+psycopg://bob:S3cret%40x@[::1]:5432/posture", "postgresql://[::1]:5432/posture"),
        ("postgresql+psycopg://user@tenant:pw@db.internal/posture", "postgresql://db.internal/posture"),
        ("sqlite:////var/lib/posture/a@b.db", "sqlite:////var/lib/posture/a@b.db"),
    ],
)
def test_a_database_url_that_works_is_still_shown_and_accepted(url: str, shown: str) -> None:
    assert shown_db_url(url) == shown
    parse_url(url)  # accepted: the password's / ? # and an encoded @ are SQLAlchemy's to read


# ---------------------------------------------------------------- a notification topic in host position


def test_an_ntfy_topic_is_not_shown_as_a_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[[notify]]\nname = "oncall-phone"\nurl = "ntfy://PrivTopic-8f3kQz91"\n\n'
                   '[[notify]]\nurl = "ntfys://ntfy.example.test/OtherTopic-77x"\n')
    said = ""
    for fmt in ("table", "json"):
        code, text = _run(["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}", "config", "check",
                           "--format", fmt], capsys)
        assert code == 0, text
        said += text
    assert "oncall-phone (ntfy://****)" in said and "ntfys://ntfy.example.test" in said, said
    assert "privtopic" not in said.lower() and "othertopic" not in said.lower(), said


def test_a_refused_asset_is_named_without_its_query_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("POSTURE_ALLOW_ADDRESSES")  # the suite's own allowance: loopback is refused again
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[[assets]]\nname = "api"\nurl = "http://127.0.0.1:8080/status?api_key=ASSETKEY789"\n')
    code, said = _run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 2 and "refuses to scan http://127.0.0.1:8080/status?api_key=****" in said, said
    assert "ASSETKEY789" not in said
