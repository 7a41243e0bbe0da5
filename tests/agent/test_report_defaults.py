"""``posture report`` without options: the declaration half-year in progress, said in words when empty;
``-o FILE`` picks the format from the extension and refuses one it cannot write."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from tests.agent.test_report import CONFIG, build_history


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "posture.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("[agent]\ntimezone = \"Asia/Taipei\"\n")
    return path


def test_a_new_install_reports_the_half_year_in_progress_and_says_it_holds_no_scans(
        store_url: str, empty_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--config", str(empty_config), "--db", store_url, "--now", "2026-08-10T10:00:00+08:00", "report"]
    code, out, err = cli(capsys, *base, "--format", "json", "--lang", "en")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    meta = doc["report"]
    assert utc(meta["since"]) == datetime(2026, 6, 30, 16, tzinfo=UTC)  # 2026-07-01 00:00 Taipei
    assert utc(meta["until"]) == datetime(2026, 12, 31, 16, tzinfo=UTC)  # the period runs to 31 December
    assert utc(meta["as_of"]) == datetime(2026, 8, 10, 2, tzinfo=UTC) and meta["declaration_period"] is True
    assert doc["summary"]["scans"] == 0 and doc["assets"] == []
    note = doc["summary"]["note"]
    assert note.startswith("No scan in this period (2026-07-01 to 2026-08-10)") and "No asset" in note

    code, html, err = cli(capsys, *base)
    assert code == 0, err
    assert "本期間（2026-07-01 至 2026-08-10）無任何掃描紀錄" in html and "本報告無任何資產" in html
    assert "2026-07-01 – 2026-12-31" in re.sub(r"<[^>]+>", "", html)  # the cover names the whole half-year


def test_configured_but_unscanned_assets_say_no_scan_in_words(
        store_url: str, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--config", str(config), "--db", store_url, "--now", "2026-02-02T09:00:00+08:00",
                         "report", "--format", "json", "--lang", "en")
    assert code == 0, err
    doc = json.loads(out)
    assert {a["name"] for a in doc["assets"]} == {"www", "never-scanned"}  # the configured ones
    assert all(a["scans"] == [] for a in doc["assets"])
    assert doc["summary"]["note"] == ("No scan in this period (2026-01-01 to 2026-02-02): posture ran none and "
                                      "no third-party scan was recorded.")


def test_default_period_holds_this_half_years_scans(store_url: str, config: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    history = build_history(store_url)
    now = "2025-12-20T10:00:00+08:00"
    code, out, err = cli(capsys, "--config", str(config), "--db", store_url, "--now", now, "report",
                         "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert utc(doc["report"]["since"]) == datetime(2025, 6, 30, 16, tzinfo=UTC)
    assert utc(doc["report"]["as_of"]) == utc(now)
    www = next(a for a in doc["assets"] if a["name"] == "www")
    expected = [t for t in history.www_scans if datetime(2025, 6, 30, 16, tzinfo=UTC) <= t < utc(now)]
    assert [utc(s["started_at"]) for s in www["scans"]] == expected and expected
    assert doc["summary"]["note"] is None

    # On 5 January the half-year in progress is days old and empty: the report says so.
    code, html, err = cli(capsys, "--config", str(config), "--db", store_url, "--now", "2026-01-05T10:00:00+08:00",
                          "report")
    assert code == 0, err
    assert "本期間（2026-01-01 至 2026-01-05）無任何掃描紀錄" in html


@pytest.mark.parametrize(("name", "kind"), [("x.csv", "csv"), ("x.json", "json"), ("x.html", "html"),
                                            ("X.HTM", "html"), ("x.JSON", "json")])
def test_output_extension_picks_the_format(sqlite_url: str, config: Path, tmp_path: Path, name: str, kind: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    build_history(sqlite_url)
    target = tmp_path / name
    code, out, err = cli(capsys, "--config", str(config), "--db", sqlite_url, "--now", "2026-01-05T10:00:00+08:00",
                         "report", "--from", "2025-07-01", "--to", "2025-12-31", "--lang", "en", "-o", str(target))
    assert code == 0 and out == "", err
    raw = target.read_bytes()
    if kind == "csv":
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
        assert rows and {"Asset", "Check ID"} <= set(rows[0])
    elif kind == "json":
        assert json.loads(raw)["report"]["declaration_period"] is True
    else:
        assert raw.startswith(b"<!DOCTYPE html>")


def test_output_format_it_cannot_write_is_refused(sqlite_url: str, config: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--config", str(config), "--db", sqlite_url, "--now", "2026-01-05T10:00:00+08:00", "report"]
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    for args, fragment in (
        (["--format", "pdf"], "a PDF is written to a file"),
        (["-o", str(tmp_path / "r.txt")], "cannot tell the format"),
        (["-o", str(tmp_path / "r")], "cannot tell the format"),
        (["--format", "json", "-o", str(tmp_path / "r.csv")], "does not match"),
        (["--format", "html", "-o", str(tmp_path / "r.pdf")], "does not match"),
    ):
        code, out, err = cli(capsys, *base, *args)
        assert code == 2 and fragment in err and err.count("\n") == 1 and out == "", (args, err)
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file

    # An explicit --format writes any file name it is given.
    code, _, err = cli(capsys, *base, "--format", "json", "-o", str(tmp_path / "evidence.txt"))
    assert code == 0, err
    assert "report" in json.loads((tmp_path / "evidence.txt").read_text("utf-8"))
