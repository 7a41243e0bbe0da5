"""No part of a notification URL but its scheme and host (and the name given) is ever printed, logged or stored.

Real Apprise into local sinks, secrets in the user, password, path segments and query
values (``?+X-Api-Key=V`` headers, ``?:token=V`` payload fields); the SQLite file's bytes
and PostgreSQL's rows are searched too.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from agent.cli import main
from state import deliveries
from state.store import Store
from tests.state.factory import T0, finding, run, scan
from tests.support.servers import closed_port
from tests.support.sinks import http_sink

SECRETS = ("UsErSecret91", "PaSsSecret92", "PathSecret93", "HeaderSecret94", "FieldSecret95", "DeadSecret96")


def _url(port: int) -> str:
    return (f"json://{SECRETS[0]}:{SECRETS[1]}@127.0.0.1:{port}/hooks/{SECRETS[2]}"
            f"?+X-Api-Key={SECRETS[3]}&:token={SECRETS[4]}")


def _config(tmp_path: Path, urls: list[tuple[str | None, str]], db: str) -> Path:
    cfg = tmp_path / "posture.toml"
    blocks = "".join(f'[[notify]]\n{f"name = {n!r}" if n else ""}\nurl = "{u}"\n\n'.replace("'", '"')
                     for n, u in urls)
    cfg.write_text('[agent]\nresolver = "127.0.0.1:9"\n'
                   f'database = "{db}"\n\n[schedule]\nscan_every = "365d"\ndigest = "weekly"\n\n'
                   f'{blocks}[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n')
    return cfg


def _stored(url: str, tmp_path: Path) -> str:
    """Everything the database holds that could carry a label or an error, as text (and file bytes)."""
    text = ""
    with Store.open(url) as store:
        for d in deliveries.deliveries(store):
            text += f"{d.channel} {d.channel_label} {d.last_error} {d.payload}\n"
    if url.startswith("sqlite:///"):
        for f in tmp_path.glob("posture.db*"):
            text += f.read_bytes().decode("latin-1")
    return text


def test_no_secret_of_a_channel_url_leaves_posture(tmp_path: Path, store_url: str,
                                                   capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dead = closed_port()
    with Store.open(store_url) as store:
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "www.broker.test:443", "critical"))]))
    printed = ""
    with http_sink() as sink:
        dead_url = f"json://ops:{SECRETS[5]}@127.0.0.1:{dead}/x/{SECRETS[5]}?:k={SECRETS[5]}"
        cfg = _config(tmp_path, [("soc-webhook", _url(sink.port)), (None, dead_url)], store_url)
        for args in (["config", "check"], ["config", "check", "--format", "json"], ["notify", "test"],
                     ["run", "--once"], ["run", "--once", "--format", "json"], ["digest", "--send"]):
            at = T0 + timedelta(hours=2)
            code = main(["--config", str(cfg), "--now", at.isoformat(), *args])
            out, err = capsys.readouterr()
            printed += out + err
            assert code in (0, 1), (args, err)
        assert sink.delivered, "the live channel received nothing"
        assert all(p.path == f"/hooks/{SECRETS[2]}" for p in sink.delivered)  # the URL itself was used
    assert "soc-webhook (json://127.0.0.1:" in printed
    assert f"json://127.0.0.1:{dead}" in printed
    everything = printed + caplog.text + _stored(store_url, tmp_path)
    for secret in SECRETS:
        assert secret not in everything, secret
    with Store.open(store_url) as store:
        labels = {d.channel_label for d in deliveries.deliveries(store)}
    assert labels and labels <= {f"soc-webhook (json://127.0.0.1:{sink.port})", f"json://127.0.0.1:{dead}"}


def test_a_database_url_and_an_asset_url_never_echo_their_password(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    for text in ('[agent]\ndatabase = "postgresql://bob:DbSecret97@h:nope/db"\n',
                 '[agent]\ndatabase = "not a url DbSecret97"\n',
                 '[[assets]]\nurl = "https://bob:DbSecret97@www.broker.test/"\n'):
        cfg.write_text(text)
        code = main(["--config", str(cfg), "config", "check"])
        out, err = capsys.readouterr()
        assert code == 2 and len(err.strip().splitlines()) == 1 and "DbSecret97" not in out + err, err
    code = main(["--db", "postgresql://bob:DbSecret97@h:nope/db", "findings"])
    out, err = capsys.readouterr()
    assert code == 2 and "DbSecret97" not in out + err
    code = main(["--db", "sqlite:///" + str(tmp_path / "x.db"), "scan", "https://bob:DbSecret97@www.broker.test/"])
    out, err = capsys.readouterr()
    assert code == 2 and "DbSecret97" not in out + err and "****@www.broker.test" in err


def test_the_migration_re_masks_labels_stored_before(tmp_path: Path) -> None:
    from importlib import import_module

    mod = import_module("state.migrations.versions.0006_mask_channel_labels")
    assert mod.mask_text("json://bob:****@127.0.0.1:8099/hooks/PathSecret93?x=HeaderSecret94") == "json://127.0.0.1:8099"
    assert mod.mask_text("discord://1...0/a...c/") == "discord://****"
    assert mod.mask_text("POST json://127.0.0.1:8099/hooks/PathSecret93 failed") == "POST json://127.0.0.1:8099 failed"


def test_migration_0006_re_masks_what_earlier_versions_stored(tmp_path: Path, store_url: str) -> None:
    from sqlalchemy import text

    from state import migrate

    with Store.open(store_url) as store:
        migrate.downgrade(store.engine, "0003")
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO deliveries (channel, channel_label, event, condition, state, created_at, attempts, "
                "last_error, payload) VALUES (:c, :l, 'alert', :cond, 'failed', :t, 1, :e, '{}')"), [
                {"c": "a" * 32, "l": f"json://bob:****@127.0.0.1:8099/hooks/{SECRETS[2]}", "cond": "new:1:0",
                 "t": T0, "e": f"POST json://127.0.0.1:8099/hooks/{SECRETS[2]}?k={SECRETS[3]} answered 500"},
                {"c": "b" * 32, "l": "discord://1...0/a...c/", "cond": "new:2:0", "t": T0, "e": None},
            ])
    with Store.open(store_url) as store:  # upgrades to the head, 0006 included
        rows = {d.channel_label: d.last_error for d in deliveries.deliveries(store)}
    assert rows == {"json://127.0.0.1:8099": "POST json://127.0.0.1:8099 answered 500", "discord://****": None}
    assert not any(s in _stored(store_url, tmp_path) for s in SECRETS)


def test_migration_0011_masks_stored_topics_and_tokens_in_the_host_position(tmp_path: Path, store_url: str) -> None:
    from importlib import import_module

    from sqlalchemy import text

    from state import migrate

    mod = import_module("state.migrations.versions.0011_mask_single_label_hosts")
    assert mod.mask_text("ntfy://privtopic-8f3kqz91") == "ntfy://****"
    assert mod.mask_text("lametric://app-id-1234") == "lametric://****"
    for kept in ("json://127.0.0.1:8099", "json://hooks.example.test", "json://localhost:80", "ntfys://[::1]:8443",
                 "discord://****", "mailto://smtp.example.test"):
        assert mod.mask_text(kept) == kept
    assert mod.mask_text("POST ntfy://privtopic-8f3kqz91 failed") == "POST ntfy://**** failed"
    with Store.open(store_url) as store:
        migrate.downgrade(store.engine, "0010")
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO deliveries (channel, channel_label, event, condition, state, created_at, attempts, "
                "last_error, payload) VALUES (:c, :l, 'alert', :cond, 'failed', :t, 1, :e, '{}')"), [
                {"c": "c" * 32, "l": "ntfy://privtopic-8f3kqz91", "cond": "new:3:0", "t": T0,
                 "e": "ntfy://privtopic-8f3kqz91 answered 500"},
                {"c": "d" * 32, "l": "json://127.0.0.1:8099", "cond": "new:4:0", "t": T0, "e": None},
            ])
    with Store.open(store_url) as store:  # upgrades to the head, 0011 included
        rows = {d.channel_label: d.last_error for d in deliveries.deliveries(store)}
    assert rows == {"ntfy://****": "ntfy://**** answered 500", "json://127.0.0.1:8099": None}
    assert "privtopic" not in _stored(store_url, tmp_path)
