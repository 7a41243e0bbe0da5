"""Loader for the recorded error pages in tests/probes/recorded (RECORDED SAMPLES, see its README)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests.support.servers import Reply

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"
RECORDED = sorted(p.name for p in RECORDED_DIR.glob("*.http"))


@dataclass(frozen=True)
class RecordedPage:
    name: str
    status: int
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)  # without Content-Type
    body: str = ""

    @property
    def header_pairs(self) -> list[tuple[str, str]]:
        return [(k.lower(), v) for k, v in self.headers.items()]

    def reply(self) -> Reply:
        return Reply(self.status, self.body, headers=dict(self.headers), content_type=self.content_type)


@cache
def load_recorded(name: str) -> RecordedPage:
    lines = (RECORDED_DIR / name).read_text("utf-8").split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    status = int(lines.pop(0).split()[1])
    headers: dict[str, str] = {}
    content_type = "text/html"
    while lines and lines[0].strip():
        key, _, value = lines.pop(0).partition(":")
        if key.strip().lower() == "content-type":
            content_type = value.strip()
        else:
            headers[key.strip()] = value.strip()
    return RecordedPage(name, status, content_type, headers, "\n".join(lines[1:]))
