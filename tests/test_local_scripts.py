"""deploy/local/common.sh: the helpers every service script shares (command dispatch, port
checks), exercised in bash without starting any service."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parent.parent / "deploy" / "local"
SERVICES = ("postgres", "redis", "kafka", "keycloak")


def common(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{LOCAL}/common.sh"; {script}'],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "FINTECH_LOCAL_DIR": str(tmp_path)},
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_script_answers_the_same_commands_through_service_main(service):
    script = (LOCAL / f"{service}.sh").read_text()
    assert script.rstrip().endswith('service_main "$@"')
    for command in ("start", "stop", "status", "env"):
        assert re.search(rf"^cmd_{command}\(\) {{", script, re.M), f"{service}.sh has no cmd_{command}"
    assert "case " not in script.split("cmd_env()")[-1], "the dispatch is common.sh's service_main"


def test_an_unknown_command_is_a_usage_error(tmp_path):
    result = common("service_main bogus", tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_ports_must_be_numbers_and_distinct(tmp_path):
    assert common("check_ports A=59092 B=59093", tmp_path).returncode == 0
    not_a_number = common("check_ports A=59092 B=ninety", tmp_path)
    assert not_a_number.returncode == 1
    assert "invalid port in B: 'ninety'" in not_a_number.stderr
    twice = common("check_ports A=59092 B=59092", tmp_path)
    assert twice.returncode == 1
    assert "B: port 59092 is already taken" in twice.stderr


def test_a_port_another_process_listens_on_is_refused_before_starting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = common(f"require_ports_free 127.0.0.1 broker {port}", tmp_path)
    assert refused.returncode == 1
    assert f"port 127.0.0.1:{port} is used by another process (not our broker)" in refused.stderr
    assert common(f"require_ports_free 127.0.0.1 broker {port}", tmp_path).returncode == 0
