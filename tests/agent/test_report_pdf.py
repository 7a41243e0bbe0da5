"""``posture report --format pdf`` / ``-o r.pdf``: the HTML printed by Debian's Chromium, opened and read back."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from agent.cli import main
from tests.agent.test_report import CONFIG, NOW, build_history

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")


def _fonts(reader: PdfReader) -> dict[str, bool]:
    """Font name -> whether its glyphs travel in the file.

    Chromium (Skia) embeds TrueType fonts as subsets (``/FontFile2``) and draws CFF-based
    OpenType fonts such as Noto Sans CJK as Type 3 fonts: every glyph's outline is a
    ``/CharProcs`` stream in the file. Either way the PDF needs no font on the reader's machine.
    """
    out: dict[str, bool] = {}
    for page in reader.pages:
        resources = page.get("/Resources")
        fonts = resources.get_object().get("/Font") if resources is not None else None
        for ref in (fonts.get_object().values() if fonts is not None else ()):
            font = ref.get_object()
            descendants = font.get("/DescendantFonts")
            for d in ([x.get_object() for x in descendants.get_object()] if descendants is not None else [font]):
                desc = d.get("/FontDescriptor")
                desc = desc.get_object() if desc is not None else {}
                embedded = any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")) or (
                    d.get("/Subtype") == "/Type3" and len(d.get("/CharProcs", {})) > 0)
                name = str(desc.get("/FontName") or d.get("/BaseFont"))
                out[name] = out.get(name, True) and embedded
    return out


def test_pdf_report_is_a_real_pdf_with_the_chinese_text_and_fonts_embedded(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_history(sqlite_url)
    config = tmp_path / "posture.toml"
    config.write_text(CONFIG)
    target = tmp_path / "半年報告.pdf"
    code = main(["--config", str(config), "--db", sqlite_url, "--now", NOW, "report",
                 "--from", "2025-07-01", "--to", "2025-12-31", "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 0 and out == "", err
    raw = target.read_bytes()
    assert raw.startswith(b"%PDF-1.") and raw.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(raw))
    assert len(reader.pages) >= 3  # the summary, then a page (or more) per asset
    box = reader.pages[0].mediabox
    assert abs(float(box.width) - 595.3) < 2 and abs(float(box.height) - 841.9) < 2  # A4
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    flat = re.sub(r"\s+", "", text)
    assert "對外資安弱點掃描佐證報告" in flat  # the title, as Chinese characters (not boxes, not lost)
    assert "報告期間" in flat and "2025-07-01" in flat
    assert "www" in text and "never-scanned" in text
    fonts = _fonts(reader)
    cjk = [name for name in fonts if "CJK" in name]
    assert cjk, fonts
    assert all(fonts.values()), fonts  # every font the PDF uses travels with it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_format_pdf_agrees_with_the_extension_and_english_works(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_history(sqlite_url)
    config = tmp_path / "posture.toml"
    config.write_text(CONFIG)
    target = tmp_path / "evidence.bin"
    code = main(["--config", str(config), "--db", sqlite_url, "--now", NOW, "report", "--format", "pdf",
                 "--lang", "en", "-o", str(target)])
    _, err = capsys.readouterr()
    assert code == 0, err
    reader = PdfReader(target)
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    assert "External vulnerability scan evidence report" in re.sub(r"[ \t]+", " ", text)


def test_pdf_without_chromium_is_one_line_exit_2(sqlite_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "posture.toml"
    config.write_text(CONFIG + '\n[social]\nchromium = "/nonexistent/chromium"\n')
    target = tmp_path / "r.pdf"
    code = main(["--config", str(config), "--db", sqlite_url, "--now", NOW, "report", "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "cannot write PDF" in err and "/nonexistent/chromium" in err
    assert out == "" and not target.exists() and "Traceback" not in err
