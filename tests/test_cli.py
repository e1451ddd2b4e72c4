"""The ``promkit`` command line, run as a real subprocess: version, help, and every
subcommand's bad arguments as one line with exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from promkit import __version__
from promkit.tools.cli import build_parser

PYTHON = [sys.executable, "-m", "promkit"]


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"promkit {__version__}"
    help_ = run("--help")
    assert help_.returncode == 0 and "serve" in help_.stdout
    bare = run()
    assert bare.returncode == 0 and "usage: promkit" in bare.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "promkit"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and __version__ in result.stdout


def test_every_subcommand_sets_a_handler() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert callable(args.handler)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "99999"], "invalid port 99999: must be 0 to 65535"),
        (["serve", "--port", "http"], "invalid port 'http': not a number"),
        (["serve", "--token", "x"], "the token is not accepted on the command line"),
        (["serve", "--token=x"], "the token is not accepted on the command line"),
        (["serve", "--token-fil", "x"], "unrecognized arguments: --token-fil"),
        (["serve", "--token-file", "/nonexistent/token"], "cannot read --token-file"),
        (["serve", "--host", "no-such-host.invalid", "--port", "0"],
         "cannot listen on no-such-host.invalid:0"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        (["generate", "--config", "demo/promkit.yaml", "--alertmanager-version", "0.2x"],
         "'0.2x' is not an Alertmanager version"),
        (["generate", "--config", "demo/promkit.yaml", "--alertmanager-version", "0.24"],
         "promkit writes configs for Alertmanager 0.25 or later"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
