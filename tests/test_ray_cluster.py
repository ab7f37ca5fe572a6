"""``evaluate.py`` against a real cluster of ``ray start --head`` (slow: ``pytest -m slow``).

The cluster is one node started in a folder of its own (its workers run there, as on a real
cluster) with token authentication on (``RAY_AUTH_MODE=token``, a throwaway token in
``RAY_AUTH_TOKEN``) and a Ray temp folder of its own, so that nothing else on the machine finds
it; ``ray start --block`` stops it at the end. Each command runs as the user would run it, in a
process of its own. tests/test_execution_ray.py checks the same logic in process and quickly.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[dist]")')

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

OWN_SCENARIO = "extends: default\nname: own_scenario\narrivals:\n  process: poisson\n  rate_per_s: 120.0\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{"address": HOST:PORT, "token": ...}`` of a running one-node cluster with 2 CPUs."""
    if not RAY.is_file():
        pytest.skip(f"no ray command beside {sys.executable}")
    head_dir = tmp_path_factory.mktemp("head")
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths live there
    token = secrets.token_hex(16)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    log = head_dir / "ray_start.log"
    command = [str(RAY), "start", "--head", "--block", f"--port={_free_port()}", "--num-cpus=2"]
    command += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    with log.open("w") as out:
        head = subprocess.Popen(
            command, cwd=head_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"--address='([^']+)'", log.read_text()):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        address = re.search(r"--address='([^']+)'", log.read_text()).group(1)  # type: ignore[union-attr]
        yield {"address": address, "token": token}
    finally:
        head.send_signal(signal.SIGINT)  # --block: its exit handlers stop the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        time.sleep(2)
        if _group_alive(head.pid):  # anything it left behind
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _evaluate(argv: list[str], cwd: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "160"}
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), *argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _client(cluster: dict[str, str]) -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": cluster["token"], "RAY_ADDRESS": None}


def _run_files(out: Path) -> list[dict[str, bytes]]:
    return [{p.name: p.read_bytes() for p in sorted(run.iterdir())} for run in sorted(out.iterdir())]


def test_relative_files_and_own_scenarios_give_the_local_results_on_a_cluster(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    """A checkpoint and a scenario file named relative to the user's folder, and a scenario of
    $BATCHENV_SCENARIO_PATH (itself relative), on workers that run in the head's folder: the
    results are the local pool's byte for byte, the command recorded without the execution
    flags. --jobs 1 caps the tasks at once."""
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "own_scenario.yaml").write_text(OWN_SCENARIO)
    (tmp_path / "checkpoints").symlink_to(REPO / "checkpoints")
    (tmp_path / "configs").symlink_to(REPO / "benchmarks" / "configs")
    argv = ["--agents", "timeout,checkpoints/ppo_default_mixture.zip"]
    argv += ["--scenarios", "default_mixture,configs/default_mixture_spikes.yaml,own_scenario"]
    argv += ["--seeds", "0-1", "--horizon-s", "2", "--no-plots", "--out", "out"]
    local = _evaluate([*argv, "--jobs", "1"], tmp_path, BATCHENV_SCENARIO_PATH="own")
    assert local.returncode == 0, local.stdout + local.stderr
    remote = _evaluate(
        [*argv, "--backend", "ray", "--address", cluster["address"], "--jobs", "1"],
        tmp_path,
        BATCHENV_SCENARIO_PATH="own",
        **_client(cluster),
    )
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert "at most 1 task at once" in remote.stdout
    first, second = _run_files(tmp_path / "out")
    assert first == second
    assert (
        b"--jobs" not in first["results.json"]
        and b"configs/default_mixture_spikes.yaml" in first["report.md"]
    )


def _greedy_on_ray(cwd: Path, *extra: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """The smallest run on ``--backend ray``: greedy, seed 0, 1 s, no plots, in ``cwd``;
    ``extra`` arguments and ``env`` variables as :func:`_evaluate`'s."""
    argv = ["--agents", "greedy", "--seeds", "0", "--horizon-s", "1", "--no-plots", "--backend", "ray"]
    return _evaluate([*argv, *extra], cwd, **env)


def test_a_client_without_the_token_is_told_what_to_set(cluster: dict[str, str], tmp_path: Path) -> None:
    done = _greedy_on_ray(
        tmp_path, "--address", cluster["address"], RAY_AUTH_MODE=None, RAY_AUTH_TOKEN=None, RAY_ADDRESS=None
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"--address: the Ray cluster at {cluster['address']} refused this process" in line
    assert "RAY_AUTH_MODE=token" in line and "~/.ray/auth_token" in line


def test_an_embedded_ray_starts_its_own_beside_a_cluster(cluster: dict[str, str], tmp_path: Path) -> None:
    """Without --address, --backend ray starts a local Ray of its own even where ray.init would
    find a cluster (RAY_ADDRESS, or ray start on this machine): it joined it and failed on
    num_cpus."""
    done = _greedy_on_ray(tmp_path, "--jobs", "1", **{**_client(cluster), "RAY_ADDRESS": cluster["address"]})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running on embedded local Ray, 1 CPU\n" in done.stdout
