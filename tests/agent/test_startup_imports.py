"""Start-up imports only what the command needs (issue 21).

``posture --help``, ``--version`` and every ``COMMAND --help`` load none of the heavy stacks
(storage, HTTP, X.509, config validation, notifications, the browser, migrations); building
the parser loads no command implementation; a tls+http scan never loads the browser
(Playwright) nor, unless notifications are configured, Apprise, nor the modules of the probes
it does not run (edge, leak, social, ports: the registry answers whether they apply), nor
httpx's own command line (click, rich, pygments); a scan of a database already at the newest
schema, or of a new SQLite file, never loads alembic. The config loads no probe's model for a section left at its
defaults (the tests below hold those defaults to the probes' own).

What a process imported is read from its ``sys.modules`` at exit, never from a duration:
these tests say what, not how fast (the figures are ``bench/startup.py``'s).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.cli import build_parser, main, pause_gc_for_startup
from tests.support.modules import imports_of
from tests.support.servers import Running
from tests.support.site_lab import broker_site

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.23"

# Top-level packages that --help must not load.
HEAVY = ("sqlalchemy", "sqlmodel", "httpx", "httpcore", "cryptography", "pydantic", "apprise", "playwright",
         "alembic", "mako", "tlslite", "dns", "psycopg", "selectolax", "nmap", "dnstwist", "prometheus_client")
# What building the parser may load of posture itself: the CLI, the command modules, their errors.
PARSER_MODULES = ("agent", "agent.cli", "agent.command_names", "agent.lean", "agent.commands", "agent.errors",
                  "agent.typed", "state",
                  "state.errors", "vocab", "vocab.errors", "vocab.words", "schedules", "schedules.duties")


def heavy(modules: Sequence[str]) -> list[str]:
    return sorted({m for m in modules if m.split(".")[0] in HEAVY})


def command_names() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sub.choices is not None
    return sorted(sub.choices)


def test_the_import_report_sees_heavy_imports(tmp_path: Path) -> None:
    """The reader is not blind: a process that does import the storage stack shows it."""
    _, modules = imports_of([], tmp_path, code="import sqlmodel, httpx")
    assert {"sqlalchemy", "sqlmodel", "pydantic", "httpx"} <= {m.split(".")[0] for m in heavy(modules)}


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["scan", "--help"]]
                         + [[name, "--help"] for name in command_names()], ids=" ".join)
def test_help_imports_no_heavy_library(argv: list[str], tmp_path: Path) -> None:
    proc, modules = imports_of(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(("usage: posture", "posture ")), proc.stdout[:200]
    assert heavy(modules) == []


def test_a_command_imports_no_other_command(tmp_path: Path) -> None:
    proc, modules = imports_of(["catalog", "--format", "json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [m for m in modules if m.startswith("agent.commands.")] == ["agent.commands.catalog"]


def test_building_the_parser_loads_no_command_implementation(tmp_path: Path) -> None:
    code = "from agent.cli import build_parser\nbuild_parser()\n"
    proc, modules = imports_of([], tmp_path, code=code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = [m for m in modules if m.split(".")[0] in ("agent", "probes", "state", "schedules", "vocab")]
    assert "agent.commands.scan" in ours  # the command modules themselves are what registers
    extra = [m for m in ours if m not in PARSER_MODULES and not m.startswith("agent.commands.")]
    assert extra == []


def test_a_command_line_parses_the_same_with_its_command_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """``main`` builds only the named command's parser: every command's help, and its errors, are the same."""
    from agent.cli import command_in

    def outcome(parser: Any, argv: list[str]) -> tuple[Any, str, str]:
        try:
            result: Any = vars(parser.parse_args(argv))
        except SystemExit as exc:
            result = exc.code
        out, err = capsys.readouterr()
        return result, out, err

    for name in command_names():
        assert command_in(["--config", "c.toml", "--db=sqlite://", name, "--x"]) == name
        for argv in ([name, "--help"], [name, "--no-such-option"], ["--now", "2026-01-01", name]):
            assert outcome(build_parser(name), argv) == outcome(build_parser(), argv), argv
    for argv in (["--help"], ["--version"], ["--conf", "c.toml", "scan"], ["record_scan"], ["nope"], []):
        assert command_in(argv) is None, argv  # the whole parser: its usage names every command


def test_the_config_loads_without_the_http_crypto_or_storage_stacks(tmp_path: Path) -> None:
    """Every command reads the config; only the ones that scan or store need httpx, X.509 or SQLAlchemy."""
    proc, modules = imports_of([], tmp_path, code="import agent.config, agent.session\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pydantic" in modules  # the config is validated by its models
    assert not {m for m in modules if m.split(".")[0] in ("httpx", "httpcore", "cryptography", "sqlalchemy",
                                                         "sqlmodel", "alembic", "playwright", "apprise")}
    assert not [m for m in modules if m.startswith("probes.") and m.endswith(".model")]  # no section set


def test_a_probe_section_left_at_its_defaults_holds_its_probes_limits() -> None:
    """The config checks a probe section against the probe's own Settings only when it sets a value
    (start-up): so the sections' defaults must be what the probes accept, and a bad value still fails."""
    from agent.config import Config, parse_config
    from agent.errors import ConfigError

    cfg = Config()
    for section in (cfg.tls, cfg.http, cfg.social, cfg.ports):
        assert not section.model_fields_set
        section.settings()  # the probe's own parser accepts the defaults
    with pytest.raises(ConfigError, match="max_rate"):
        parse_config("[ports]\nmax_rate = 0\n")


def test_each_registry_line_says_what_its_probe_says() -> None:
    """A narrowed scan asks the registry line, not the probe, whether a probe it skips applies."""
    import itertools

    from probes.base import Target
    from probes.registry import probe_class, probe_line, probe_names
    from vocab import AssetKind

    for name in probe_names():
        line, probe = probe_line(name), probe_class(name)()
        assert line.active is probe.active, name
        for scheme, kind, active in itertools.product(("https", "http", "wss", "tls"), AssetKind, (True, False)):
            target = Target(name="a", url=f"{scheme}://a.test/", scheme=scheme, host="a.test", port=443, kind=kind,
                            active=active)
            assert line.applies(target) is probe.applies(target), (name, scheme, kind, active)


def test_the_startup_gc_pause_ends_by_itself() -> None:
    assert gc.isenabled()
    try:
        pause_gc_for_startup(0.05)
        assert not gc.isenabled()
        deadline = time.monotonic() + 30  # generous: the timer thread may wait for a busy machine
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.isenabled()
    finally:
        gc.enable()


def test_a_caller_of_main_keeps_its_gc(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the process entry point (no argv given) pauses the collector, never a caller's process."""
    assert main(["catalog", "--format", "json"]) == 0
    capsys.readouterr()
    assert gc.isenabled()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with broker_site(tmp_path_factory.mktemp("startup-lab"), "www.startup.test", HOST, "startup imports root") as site:
        yield site


def scan_argv(lab: dict[str, Any], db: str) -> list[str]:
    www: Running = lab["www"]
    return ["--db", db, "scan", f"https://www.startup.test:{www.port}/", "--resolver", lab["dns"],
            "--ca-bundle", lab["bundle"], "--probe", "tls", "--probe", "http", "--format", "json"]


def test_tls_http_scan_never_loads_the_browser_nor_alembic_on_a_current_schema(
        lab: dict[str, Any], store_url: str, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):  # the first creates the schema (alembic); the second finds it at the head
        proc, modules = imports_of(scan_argv(lab, store_url), tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (scan,) = json.loads(proc.stdout)["scans"]
        ran = {p["probe"]: p["outcome"] for p in scan["probes"]}
        assert ran["tls"] == ran["http"] == "ran" and ran["social"] == "skipped"
        assert scan["observations"]["tls"]["status"] == "ok"
        runs.append(set(modules))
    first, second = runs
    assert "sqlalchemy" in first and "httpx" in first and "cryptography.x509" in first  # it did scan and store
    # A new SQLite file is made from the tables (state/migrate.py); a new PostgreSQL database is migrated.
    assert ("alembic" in first) == store_url.startswith("postgresql"), store_url
    for modules in runs:
        assert not {m for m in modules if m.split(".")[0] in ("playwright", "apprise")}
        assert "httpx._main" not in modules and not {m for m in modules if m.split(".")[0] in ("click", "rich")}
        assert not {m for m in modules if m.startswith(("probes.edge", "probes.leak", "probes.social", "agent.notify",
                                                        "probes.ports.probe", "probes.child"))}
    assert not {m for m in second if m.split(".")[0] in ("alembic", "mako", "pygments")}


def test_a_probe_whose_module_cannot_load_fails_when_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lazy probe defers the import, not the failure: the scan's await of run() raises it
    (the runner records it as that probe's error); until then it has no optional flags."""
    import asyncio

    from probes import registry
    from probes.base import Target

    line = registry.ProbeLine("probes.no_such_probe:Nothing", False, lambda t: True)
    monkeypatch.setitem(registry._PROBES, "broken", line)
    probe = registry.load_probe("broken")
    target = Target(name="a", url="https://a.test/", scheme="https", host="a.test", port=443)
    assert probe.name == "broken" and probe.active is False and probe.applies(target)
    assert getattr(probe, "holds_host", False) is False
    with pytest.raises(ModuleNotFoundError, match=r"probes\.no_such_probe"):
        asyncio.run(probe.run(target, None))  # type: ignore[arg-type]
    with pytest.raises(ModuleNotFoundError):
        probe.checks  # noqa: B018
