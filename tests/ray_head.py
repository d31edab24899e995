"""A Ray head node that a test owns: `ray start --head --block` in a subprocess of its own session,
with a private temp dir, free ports, its own auth token, the Jobs API on loopback, and an explicit
address for every client.

Other Ray instances run on the same machine (the test suite's own `ray.init()`s), so nothing here
touches /tmp/ray or the default ports, and teardown never runs `ray stop` (which kills every Ray on
the machine). It ends only processes that carry this head's private RAY_TMPDIR in their environment:
everything Ray starts inherits it, including what leaves the head's process group (core workers,
job entrypoints: Ray gives both a session of their own) and the worker nodes that the fake
autoscaler's provider starts from the monitor process.

Imported as `from ray_head import RayHead` (tests/ is on sys.path, as for helpers)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from data_fixtures import free_port

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


class RayHead:
    """`ray start --head --block` with `num_cpus` CPUs (and the autoscaler: `autoscale`). The temp dir
    is short (Unix socket paths are limited to 107 characters) and holds ray_current_cluster, so a
    plain `ray.init()` elsewhere never finds this cluster."""

    def __init__(self, log: Path, *, num_cpus: int = 2, env: Mapping[str, str] | None = None) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="ar", dir="/tmp")
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        # every port Ray would otherwise take at a fixed default (10001, 52365, ...)
        ports = {"--ray-client-server-port": free_port(), "--dashboard-agent-listen-port": free_port(),
                 "--dashboard-agent-grpc-port": free_port(), "--metrics-export-port": free_port(),
                 "--runtime-env-agent-port": free_port(), "--node-manager-port": free_port(),
                 "--object-manager-port": free_port()}
        # no --node-ip-address: Ray would swap 127.0.0.1 for the machine's IP anyway; the dashboard
        # (the Jobs API) listens on loopback only
        self.command = [RAY, "start", "--head", "--block", f"--port={self.gcs_port}",
                        "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={self.dashboard_port}", f"--num-cpus={num_cpus}",
                        f"--temp-dir={self.temp_dir}", "--min-worker-port=0", "--max-worker-port=0",
                        "--disable-usage-stats", *[f"{k}={v}" for k, v in ports.items()]]
        # A token of its own (Ray 2.59+ turns token auth on for a head when ~/.ray/auth_token
        # exists): the head and every client here get it from the environment, nothing is read
        # from or written to the home folder. PATH: the CLI the job entrypoint finds.
        self.token = secrets.token_hex(16)
        inherited = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env = {**inherited, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "RAY_TMPDIR": self.temp_dir, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                    "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1",
                    # SIGTERM ends the head at once (Ray's default drains the node for 30 s first)
                    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **(env or {})}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def autoscale(self, config: Mapping[str, Any]) -> Path:
        """Run the autoscaler with this cluster config (before `start`; the fake multi-node
        provider also needs RAY_FAKE_CLUSTER=1 in the head's `env`)."""
        path = Path(self.temp_dir) / "autoscaling.yaml"
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.command.append(f"--autoscaling-config={path}")
        return path

    def start(self, timeout: float = 180, attempts: int = 2) -> "RayHead":
        """Start the head and wait for its dashboard and its node. `ray start` gives the raylet a
        fixed 30 s to register, which a machine loaded by other test runs can miss: then whatever
        it left is ended and it starts again."""
        for attempt in range(1, attempts + 1):
            with open(self.log, "a") as out:
                self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            deadline = time.time() + timeout
            while time.time() < deadline and self.proc.poll() is None:
                if self._dashboard_up() and self._head_alive():
                    return self
                time.sleep(1)
            left = self.stop()
            if attempt == attempts or left:
                break
        raise RuntimeError(f"the head did not come up (ray start: {self.proc.returncode}, "
                           f"{attempts} attempt(s)):\n"
                           f"{self.log.read_text()[-3000:]}")

    def _dashboard_up(self) -> bool:
        try:
            return self.get("/api/version").get("ray_version") is not None
        except (OSError, ValueError):
            return False

    def _head_alive(self) -> bool:
        try:
            return any(n["is_head_node"] and n["state"] == "ALIVE" for n in self.nodes())
        except (OSError, ValueError, KeyError):
            return False

    def get(self, path: str, timeout: float = 30) -> Any:
        """GET a dashboard endpoint (JSON), with the head's token."""
        request = urllib.request.Request(f"{self.dashboard_url}{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return json.loads(r.read())

    def job_status(self, submission_id: str) -> str:
        return str(self.get(f"/api/jobs/{submission_id}")["status"])

    def gcs_address(self) -> str:
        """What a driver gives as RAY_ADDRESS (as `ray start` registered it in the temp dir)."""
        return (Path(self.temp_dir) / "ray_current_cluster").read_text().strip()

    def nodes(self) -> list[dict[str, Any]]:
        """Every node the cluster has had (the state API; removed ones are DEAD)."""
        return self.get("/api/v0/nodes?detail=true&limit=1000")["data"]["result"]["result"]

    def session_dir(self) -> Path:
        return Path(self.temp_dir) / "session_latest"

    def processes(self) -> list[int]:
        """This cluster's live processes: ours, with its temp dir in their environment."""
        me, found = os.getuid(), []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if entry.stat().st_uid != me:
                    continue
            except OSError:
                continue
            if _environ(int(entry.name)).get("RAY_TMPDIR") == self.temp_dir and _alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    def stop(self, grace: float = 30) -> list[int]:
        """SIGTERM the head's process group (`ray start --block` then stops the processes it
        started), then SIGKILL whatever of this cluster is left after `grace` seconds, by pid: once
        `ray start` is reaped its group id may name someone else's group. Returns the pids still
        alive after that (none, unless something could not be killed)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # still ours: its leader is not reaped
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(3):
            left = self.processes()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(1)
        return self.processes()

    def remove_temp_dir(self) -> None:
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def job_command(self, verb: str, *args: str) -> list[str]:
        """`ray job VERB --address <dashboard> ARGS`: the CLI a user runs against this head."""
        return [RAY, "job", verb, "--address", self.dashboard_url, *args]

    def job(self, verb: str, *args: str, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.job_command(verb, *args), env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"ray job {verb} {' '.join(args)} exited with {proc.returncode}:\n"
                               f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return proc

