from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main


def test_refresh_from_an_export_and_use_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = {"nginx": [{"cycle": "1.99", "releaseDate": "2026-04-01", "eol": "2027-04-01", "latest": "1.99.1"},
                        {"cycle": "1.28", "releaseDate": "2025-04-23", "eol": "2026-04-22", "latest": "1.28.0"}]}
    src = tmp_path / "export.json"
    src.write_text(json.dumps(export))
    out = tmp_path / "eol.json"
    code = main(["--now", "2026-11-21T00:00:00Z", "eol", "refresh", str(src), "-o", str(out)])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    data = json.loads(out.read_text())
    from probes.eol.data import load_eol_data

    fresh = load_eol_data(out)
    nginx = fresh.product_for("nginx")
    assert nginx is not None and {c.cycle for c in nginx.cycles} >= {"1.99", "1.28"}
    assert data["imports"][-1]["source"] == str(src)

    from probes.eol.banners import Banner, BannerSource
    from probes.eol.check import eol_findings

    seen = [Banner("nginx", "1.28.0", BannerSource.HEADER, "header server", "nginx/1.28.0")]
    import datetime as dt

    found = eol_findings(seen, fresh, dt.date(2026, 11, 21))
    assert [f.key for f in found] == ["nginx:1.28"]


@pytest.mark.parametrize("content", ["not json", json.dumps({"nginx": [{"eol": "2026-01-01"}]})])
def test_bad_export_is_a_usage_error(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "export.json"
    src.write_text(content)
    code = main(["eol", "refresh", str(src), "-o", str(tmp_path / "eol.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "export.json" in err
    assert not (tmp_path / "eol.json").exists()
