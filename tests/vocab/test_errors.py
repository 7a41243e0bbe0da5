"""The one exception tree and the one-line formatter."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import vocab
from vocab import DataFileError, InputError, PostureError, escape, mask, one_line

LAYERS = ("agent", "probes", "schedules", "state", "vocab")
ROOT = Path(__file__).parents[2]


def _modules() -> list[str]:
    names = []
    for layer in LAYERS:
        package = importlib.import_module(layer)
        names.append(layer)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{layer}."):
            if not info.name.endswith("__main__"):  # runs the CLI on import
                names.append(info.name)
    return names


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional browser/tool binding missing: say which
            pytest.fail(f"{name} does not import: {exc}")
        for attr, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                found[f"{name}.{attr}"] = value
    return found


def test_every_exception_class_derives_from_posture_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 30, sorted(classes)  # the walk reached the layers' modules
    # A stop request (agent.scanning.stopping.Stopped) is an interrupt, as Ctrl-C is, not an error.
    loose = sorted(name for name, cls in classes.items()
                   if not issubclass(cls, PostureError) and not issubclass(cls, KeyboardInterrupt))
    assert not loose, f"exception classes outside the tree: {loose}"


def test_the_branches_hang_where_the_docstring_draws_them() -> None:
    from agent.demo.lab import LabError
    from agent.errors import AgentError, ConfigError, UsageError
    from probes.base import NameNotFound, ProbeFailure
    from probes.files import FileRefused
    from probes.ports.judge import NmapOutputError
    from probes.ports.probe import SettingsError
    from schedules.quiet import QuietError
    from schedules.timing import ScheduleError
    from state.errors import NotFound, StoreError
    from state.job_queue import LeaseLost

    for cls in (ScheduleError, QuietError, NmapOutputError, FileRefused):
        assert issubclass(cls, InputError) and issubclass(cls, ValueError), cls
    assert issubclass(DataFileError, ValueError) and not issubclass(DataFileError, InputError)
    for cls in (NameNotFound, SettingsError):
        assert issubclass(cls, ProbeFailure)
    assert issubclass(NotFound, StoreError) and issubclass(LeaseLost, StoreError)
    assert issubclass(ConfigError, UsageError) and issubclass(UsageError, AgentError)
    assert issubclass(LabError, RuntimeError)
    for cls in (ProbeFailure, StoreError, AgentError, LabError, InputError, DataFileError):
        assert issubclass(cls, PostureError)
        assert cls.__name__ in (vocab.errors.__doc__ or ""), cls


def test_no_data_file_error_class_of_its_own() -> None:
    """Every shipped data file reports through DataFileError; the old per-file classes are gone."""
    gone = ("CatalogError", "EolDataError", "SignatureError", "PortTableError", "SuiteDataError",
            "FrameShapeError")
    classes = _exception_classes()
    assert not [n for n in classes if n.rsplit(".", 1)[1] in gone]


_CLAUSE = '[[clauses]]\nlabel="X"\nsource="s"\nzh="中"\nen="e"\nchecks=["a.b"]\n'
MALFORMED = {
    # (parser, text, what the message says)
    "catalog dangling": ("probes.catalog:parse_catalog", 'version="1"\n' + _CLAUSE, "unknown checks"),
    "catalog no id": ("probes.catalog:parse_catalog", 'version="1"\n[[checks]]\nseverity="low"\n',
                      "catalog: missing key 'id'"),
    "catalog not toml": ("probes.catalog:parse_catalog", "version = = 1", "catalog: "),
    "suites bad protocol": ("probes.tls.suite_data:parse_suites",
                            '[[suites]]\nid = 1\nname = "X"\nsince = "tls9"\nflags = []\n', "X: "),
    "suites no since": ("probes.tls.suite_data:parse_suites", '[[suites]]\nid = 1\nname = "X"\n',
                        "TLS suites: missing key 'since'"),
    "ports bad severity": ("probes.ports.judge:parse_port_table",
                           '[classes.x]\nlabel = "x"\nseverity = "dire"\n', "ports table: "),
    "banner unknown table": ("probes.eol.banners:parse_rules",
                             '[[page]]\nid = "p"\npattern = "no group"\nsource = "s"\n', "unknown key 'page'"),
    "banner headers not a list": ("probes.eol.banners:parse_rules", 'headers = "server"\n', "headers must be a list"),
    "edge empty": ("probes.edge.signatures:parse_signatures", 'version = "1"\n', "no [[signatures]]"),
    "leak unknown check": ("probes.leak.signatures:parse_signatures",
                           '[[signatures]]\nid = "s"\ncheck = "leak.nope"\n', "unknown check"),
    "eol not an object": ("probes.eol.data:parse_eol_data", [], "expected a JSON object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_data_is_a_data_file_error(case: str) -> None:
    loader, text, message = MALFORMED[case]
    module, _, func = loader.partition(":")
    parse = getattr(importlib.import_module(module), func)
    with pytest.raises(DataFileError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_one_line_joins_lines_and_collapses_whitespace() -> None:
    assert one_line(PostureError("a\n  b\t\tc ")) == "a b c"
    assert one_line(KeyError("x")) == "KeyError: 'x'"  # outside the tree: named
    assert one_line(PostureError("x"), named=True) == "PostureError: x"
    assert one_line(ValueError("x"), named=False) == "x"


def test_one_line_limit_empty_and_first_line() -> None:
    assert one_line(PostureError("x" * 500)) == "x" * 300
    assert one_line(PostureError("x" * 500), limit=10) == "x" * 10
    assert one_line(PostureError("x" * 500), limit=None) == "x" * 500
    assert one_line(RuntimeError()) == "RuntimeError: RuntimeError"
    assert one_line(PostureError("")) == "PostureError"
    text = "\n\n  connection refused  \nIs the server running on host?\n[SQL: SELECT 1]"
    assert one_line(PostureError(text), first_line=True) == "connection refused"
    assert one_line(PostureError(text)) == "connection refused Is the server running on host? [SQL: SELECT 1]"


def test_one_line_unwraps_a_driver_error() -> None:
    class Wrapper(Exception):
        def __init__(self, orig: BaseException) -> None:
            super().__init__("(wrapped) noise\n[SQL: secret statement]")
            self.orig = orig

    wrapped = Wrapper(OSError("no such table: scans\nhint"))
    assert one_line(wrapped, named=False, first_line=True) == "no such table: scans"
    assert one_line(wrapped, named=True, first_line=True) == "Wrapper: no such table: scans"


def test_one_line_masks_secrets_before_cutting() -> None:
    exc = RuntimeError("POST https://hooks.example/T0KEN123/abc failed: T0KEN123")
    line = one_line(exc, secrets=["T0KEN123", "T0KEN123/abc", ""])
    assert "T0KEN" not in line
    assert line == "RuntimeError: POST https://hooks.example/**** failed: ****"
    secret = "s" * 20
    assert "sss" not in one_line(PostureError("x" * 290 + secret), secrets=[secret])
    assert mask("ab abc", ["ab", "abc"]) == "**** ****"


def test_escape_makes_control_characters_visible() -> None:
    assert escape("a\nb\x1b[31m\\") == "a\\x0ab\\x1b[31m\\\\"
    assert escape("名稱\u202e") == "名稱\\u202e"
