"""``posture demo --report x.pdf``: the demo's evidence report as a real PDF, read back."""

from __future__ import annotations

import os
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.agent.test_demo import POSTURE, _private_network

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")


def test_demo_writes_the_report_as_pdf(tmp_path: Path) -> None:
    report = tmp_path / "evidence.pdf"
    env = {**os.environ, "TMPDIR": str(tmp_path), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        _private_network([*POSTURE, "demo", "--db", f"sqlite:///{tmp_path / 'demo.db'}", "--report", str(report)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert f"Evidence report: {report.resolve()}" in out
    raw = report.read_bytes()
    assert raw.startswith(b"%PDF-")
    reader = PdfReader(report)
    assert len(reader.pages) >= 3
    # NFKC: the PDF's text layer uses ligatures (ﬁ) and CJK radicals (⼗) for some glyphs.
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", "\n".join(p.extract_text() or "" for p in reader.pages)))
    assert "External vulnerability scan evidence report" in text  # the demo reports in English
    assert "expired-cert" in text and "tls.cert.expired" in text
    assert "Remediation: Renew the certificate now" in text  # the catalog's advice beside the finding
    assert "subject CN=expired.lab.posture.test" in text  # and what was observed
