"""The end-of-life check's shared ``Settings`` (see :mod:`probes.model`).

End of life is judged by two probes (http on response headers, ports on nmap
service detection) from one data file. Neither reads the other's settings: the
agent passes this section (``Target.settings["eol"]``) to both. It is written as
``[ports] eol_data`` in the config, or set by ``posture eol refresh``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from probes.model import JSON, optional_path, refuse_unknown


@dataclass(frozen=True)
class Settings:
    data: str | None = None  # a refreshed end-of-life data file instead of the shipped one

    SECTION: ClassVar[str] = "eol"

    def __post_init__(self) -> None:
        optional_path(self.SECTION, "data", self.data)

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        refuse_unknown(cls.SECTION, raw, ("data",))
        return cls(data=raw.get("data"))

    def to_json(self) -> dict[str, JSON]:
        return {} if self.data is None else {"data": self.data}
