"""scripts/setup.sh: safe on the machine it runs on, runtime apart from test-only packages.

The script runs for real (bash, in a temporary copy of the checkout) with fake ``apt-get``,
``dpkg-query``, ``sudo``, ``id``, service managers and Python first on a PATH that holds
nothing else but the few real tools it uses, so nothing is installed and no service is
touched, and every command it issues is logged and checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUNTIME = {"python3", "python3-venv", "ca-certificates", "nmap", "chromium", "fonts-noto-cjk", "fontconfig"}
TEST_ONLY = {"nginx", "libnginx-mod-http-modsecurity", "modsecurity-crs", "gnutls-bin", "php-cli",
             "openssh-server", "postgresql", "dnsmasq-base", "iproute2", "util-linux", "systemd",
             "nodejs", "npm", "prometheus"}
SERVICE_TOOLS = ("systemctl", "service", "invoke-rc.d", "update-rc.d", "deb-systemd-invoke", "deb-systemd-helper")
REAL_TOOLS = ("bash", "sh", "env", "grep", "cut", "dirname", "basename", "mkdir", "ln", "readlink", "sed",
              "cat", "chmod", "rm", "cp")

_LOG = '#!/bin/bash\nprintf "%s\\n" "$(basename "$0") $*" >> "$FAKE_LOG"\n'
FAKES = {
    **{name: _LOG for name in SERVICE_TOOLS},
    "logger.in": _LOG,
    # What it installs is there afterwards: node and npm become logging fakes.
    "apt-get": _LOG + 'for p in "$@"; do case "$p" in\n'
               '  nodejs) cp "$(dirname "$0")/logger.in" "$(dirname "$0")/node"; chmod +x "$(dirname "$0")/node" ;;\n'
               '  npm) cp "$(dirname "$0")/logger.in" "$(dirname "$0")/npm"; chmod +x "$(dirname "$0")/npm" ;;\n'
               'esac; done\n',
    "sudo": _LOG + 'exec "$@"\n',
    "id": '#!/bin/bash\nif [ "$1" = -u ]; then echo "$FAKE_UID"; else exec /usr/bin/id "$@"; fi\n',
    # Installed when named in FAKE_INSTALLED (the last argument is the package).
    "dpkg-query": '#!/bin/bash\nfor p in $FAKE_INSTALLED; do\n'
                  '  if [ "$p" = "${@: -1}" ]; then printf "install ok installed"; exit 0; fi\ndone\n'
                  'echo "dpkg-query: no packages found matching ${@: -1}" >&2; exit 1\n',
    # `python3 -m venv DIR`: a fake virtualenv whose python, pip and posture log their calls.
    "python3": _LOG + 'if [ "$1 $2" = "-m venv" ]; then\n  mkdir -p "$3/bin"\n'
               '  for t in python pip posture; do\n'
               '    sed "s/@T@/$t/g" "$(dirname "$0")/venv-tool.in" > "$3/bin/$t"; chmod +x "$3/bin/$t"\n'
               '  done\nfi\n',
    "venv-tool.in": '#!/bin/bash\nprintf "%s\\n" "venv-@T@ $*" >> "$FAKE_LOG"\n'
                    '[ "$1" = --version ] && echo "@T@ 0.1.0"\nexit 0\n',
    "npm": _LOG,
    "node": _LOG,
}


@dataclass
class Run:
    code: int
    out: str
    err: str
    log: list[str]
    repo: Path

    def calls(self, tool: str) -> list[str]:
        return [line for line in self.log if line.split(" ", 1)[0] == tool]

    def installed(self) -> set[str]:
        """Packages passed to ``apt-get install`` (options dropped)."""
        names: set[str] = set()
        for line in self.calls("apt-get"):
            words = line.split()
            if "install" in words:
                names |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
        return names


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A checkout copy and a PATH of fakes plus a handful of real tools (no real node, npm, sudo...)."""
    repo = tmp_path / "checkout"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    app = repo / "tests" / "support" / "express_app"
    app.mkdir(parents=True)
    shutil.copy2(ROOT / "tests" / "support" / "express_app" / "package.json", app / "package.json")
    for d in ("fake", "sys", "home", "links"):
        (tmp_path / d).mkdir()
    for name in REAL_TOOLS:
        real = shutil.which(name, path="/usr/bin:/bin")
        assert real is not None, name
        (tmp_path / "sys" / name).symlink_to(real)
    return tmp_path


def setup(machine: Path, *args: str, uid: int = 0, installed: set[str] | frozenset[str] = frozenset(),
          fakes: tuple[str, ...] = (), link_dir: str | None = None, path_first: Path | None = None) -> Run:
    fake = machine / "fake"
    for name in (*SERVICE_TOOLS, "apt-get", "sudo", "id", "dpkg-query", "python3", "venv-tool.in", "logger.in",
                 *fakes):
        path = fake / name
        path.write_text(FAKES[name], "utf-8")
        path.chmod(0o755)
    log = machine / "calls.log"
    log.write_text("", "utf-8")
    env = {
        "PATH": f"{path_first or fake}:{fake}:{machine / 'sys'}",
        "HOME": str(machine / "home"),
        "FAKE_LOG": str(log),
        "FAKE_UID": str(uid),
        "FAKE_INSTALLED": " ".join(sorted(installed)),
        "PYTHON": str(fake / "python3"),
    }
    env["POSTURE_LINK_DIR"] = str(machine / "links") if link_dir is None else link_dir
    if link_dir == "unset":
        del env["POSTURE_LINK_DIR"]
    proc = subprocess.run(["/bin/bash", str(machine / "checkout" / "scripts" / "setup.sh"), *args],
                          env=env, capture_output=True, text=True, timeout=60)
    return Run(proc.returncode, proc.stdout, proc.stderr, log.read_text("utf-8").splitlines(),
               machine / "checkout")


def assert_no_service_touched(run: Run) -> None:
    touched = [line for line in run.log if line.split(" ", 1)[0] in SERVICE_TOOLS]
    assert touched == [], f"set-up touched services: {touched}"
    assert not any(w in run.out + run.err for w in ("systemctl", "disable --now")), run.out


def test_runtime_setup_on_a_fresh_machine_installs_only_what_posture_needs(machine: Path) -> None:
    run = setup(machine)
    assert run.code == 0, run.err
    assert run.installed() == RUNTIME
    assert run.calls("apt-get")[0] == "apt-get update -q"
    assert "venv-pip install -q -e ." in run.log
    assert not any("[dev]" in line for line in run.log)
    assert run.calls("npm") == [] and run.calls("sudo") == []
    assert_no_service_touched(run)


def test_dev_setup_adds_the_test_servers_and_tools(machine: Path) -> None:
    run = setup(machine, "--dev")
    assert run.code == 0, run.err
    assert run.installed() == RUNTIME | TEST_ONLY
    assert "venv-pip install -q -e .[dev]" in run.log
    assert run.calls("npm") == ["npm ci --silent --no-audit --no-fund"]
    assert_no_service_touched(run)


def test_node_from_elsewhere_is_not_installed_again(machine: Path) -> None:
    run = setup(machine, "--dev", fakes=("node", "npm"))
    assert run.code == 0, run.err
    assert run.installed() == RUNTIME | TEST_ONLY - {"nodejs", "npm"}


@pytest.mark.parametrize("mode", [(), ("--dev",)])
def test_a_server_running_ssh_nginx_postgresql_is_left_alone(machine: Path, mode: tuple[str, ...]) -> None:
    """Everything already installed (and, on a real server, running): nothing installed, nothing touched."""
    run = setup(machine, *mode, installed=RUNTIME | TEST_ONLY, fakes=("node", "npm"))
    assert run.code == 0, run.err
    assert run.calls("apt-get") == []
    assert_no_service_touched(run)
    again = setup(machine, *mode, installed=RUNTIME | TEST_ONLY, fakes=("node", "npm"))
    assert again.code == 0 and again.calls("apt-get") == []
    assert_no_service_touched(again)


def test_not_root_installs_through_sudo_and_links_into_the_home(machine: Path) -> None:
    run = setup(machine, uid=1000, installed=RUNTIME - {"nmap"}, link_dir="unset")
    assert run.code == 0, run.err
    assert run.installed() == {"nmap"}
    assert all(line.startswith("sudo ") for line in run.calls("sudo")) and len(run.calls("sudo")) == 2
    link = machine / "home" / ".local" / "bin" / "posture"
    assert link.is_symlink() and os.readlink(link) == str(run.repo / ".venv" / "bin" / "posture")
    assert_no_service_touched(run)


def test_not_root_without_sudo_says_so(machine: Path) -> None:
    fake = machine / "fake"
    run = setup(machine, uid=1000)
    assert run.code == 0  # sanity: with sudo it works
    (fake / "sudo").unlink()
    env_run = subprocess.run(["/bin/bash", str(run.repo / "scripts" / "setup.sh")],
                             env={"PATH": f"{fake}:{machine / 'sys'}", "HOME": str(machine / "home"),
                                  "FAKE_LOG": str(machine / "calls.log"), "FAKE_UID": "1000",
                                  "FAKE_INSTALLED": "", "PYTHON": str(fake / "python3")},
                             capture_output=True, text=True, timeout=60)
    assert env_run.returncode == 1
    assert env_run.stderr.strip().count("\n") == 0 and "root or sudo" in env_run.stderr


def test_posture_is_linked_onto_path_but_never_over_another_file(machine: Path) -> None:
    links = machine / "links"
    run = setup(machine, installed=RUNTIME)
    target = run.repo / ".venv" / "bin" / "posture"
    assert os.readlink(links / "posture") == str(target)
    assert f"not on PATH here; run it as {target}" in run.out
    again = setup(machine, installed=RUNTIME, path_first=links)  # again, with the link dir on PATH
    assert again.code == 0 and os.readlink(links / "posture") == str(target)
    assert "PATH" not in again.out and "left alone" not in again.out

    (links / "posture").unlink()
    (links / "posture").write_text("#!/bin/sh\necho someone else's posture\n", "utf-8")
    run = setup(machine, installed=RUNTIME)
    assert run.code == 0, run.err
    assert (links / "posture").read_text("utf-8") == "#!/bin/sh\necho someone else's posture\n"
    assert "left alone" in run.out and str(target) in run.out

    (links / "posture").unlink()
    (links / "posture").symlink_to(machine / "removed-checkout" / ".venv" / "bin" / "posture")
    run = setup(machine, installed=RUNTIME)
    assert os.readlink(links / "posture") == str(target)  # a link to a checkout that is gone is replaced

    other = machine / "other-checkout" / ".venv" / "bin" / "posture"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n", "utf-8")
    (links / "posture").unlink()
    (links / "posture").symlink_to(other)
    run = setup(machine, installed=RUNTIME)
    assert os.readlink(links / "posture") == str(other)  # another live checkout keeps its link
    assert "left alone" in run.out


def test_unknown_option_is_a_usage_error(machine: Path) -> None:
    run = setup(machine, "--devv")
    assert run.code == 2 and "usage" in run.err and run.log == []


# ------------------------------------------------------------ the README and the scripts agree


def test_readme_commands_are_the_scripts() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    blocks = text.split("```sh\n")
    assert blocks[1].split("\n")[0] == "bash scripts/setup.sh && .venv/bin/posture demo"
    assert blocks[2].split("\n")[0] == "bash scripts/test.sh"
    test_sh = (ROOT / "scripts" / "test.sh").read_text("utf-8")
    assert "bash scripts/setup.sh --dev\n" in test_sh
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text("utf-8")
    for script in ("setup.sh", "test.sh", "in_netns.sh"):
        body = (ROOT / "scripts" / script).read_text("utf-8")
        assert not any(f"{tool} " in line and not line.lstrip().startswith("#")
                       for tool in ("systemctl", "service", "invoke-rc.d") for line in body.splitlines()), script


# ------------------------------------------------------------ the demo's hints work as printed


def _venv(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "posture").write_text("#!/bin/sh\n", "utf-8")
    (bin_dir / "posture").chmod(0o755)
    return bin_dir


def test_demo_hint_is_posture_when_that_is_this_one_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.commands.demo import command

    bin_dir = _venv(tmp_path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    links = tmp_path / "links"
    links.mkdir()
    (links / "posture").symlink_to(bin_dir / "posture")
    monkeypatch.setenv("PATH", f"{links}:/usr/bin:/bin")
    assert command() == "posture"


def test_demo_hint_is_the_venv_path_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.commands.demo import command

    bin_dir = _venv(tmp_path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "posture").write_text("#!/bin/sh\n", "utf-8")
    (other / "posture").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}:/usr/bin:/bin")  # a different posture first on PATH
    monkeypatch.chdir(tmp_path)
    assert command() == "venv/bin/posture"
    monkeypatch.chdir(bin_dir)
    assert command() == "./posture"
    monkeypatch.chdir(other)
    assert command() == str(bin_dir / "posture")
    hint = subprocess.run(["/bin/sh", "-c", f"{command()} && echo ran"], capture_output=True, text=True,
                          timeout=10, env={"PATH": os.environ["PATH"]})
    assert hint.stdout == "ran\n"
