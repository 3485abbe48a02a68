"""A throw-away single-node SLURM cluster for tests: the `slurm_cluster` fixture (session scope).

Starts munged with a generated key, slurmctld and slurmd (Debian's slurm-wlm and munge; `make system-deps`
installs them) from a slurm.conf in a temporary directory: one node (this host, at 127.0.0.1, with its CPUs
and memory as `slurmd -C` reports them), one partition `debug`, free ports, state, spool and logs in the
temporary directory, job completion records in `jobcomp.txt` (`JobCompType=jobcomp/filetxt`; there is no
accounting database, so `sacct` has nothing to say). SLURM_CONF is exported while the fixture lives, so
sbatch, squeue and scancel of the tests and their children talk to this cluster. Teardown cancels the jobs
left, stops the three daemons and removes the directory. Skips with the reason (and the daemon's log tail)
when SLURM or munge is missing or a daemon does not come up.

Loaded as a plugin from tests/conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SBIN = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin", os.environ.get("PATH", "")])
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol")
START_S = 60  # a daemon that is not up after this long is reported as failed


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    cpus: int

    def jobcomp(self) -> list[dict[str, str]]:
        """slurmctld's completion record of every finished job: JobId, Name, JobState, Partition, TimeLimit,
        NodeList, ProcCnt, Tres, ExitCode, ..."""
        path = self.root / "jobcomp.txt"
        text = path.read_text() if path.exists() else ""
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines() if line.strip()]

    def wait_jobcomp(self, job_ids, timeout: float = 30) -> dict[str, dict[str, str]]:
        """The completion records of these jobs, once slurmctld has written them all."""
        want = {str(j) for j in job_ids}
        deadline = time.time() + timeout
        while True:
            records = {r["JobId"]: r for r in self.jobcomp() if r.get("JobId") in want}
            if len(records) == len(want) or time.time() > deadline:
                return records
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return f"no log at {path}"
    return " | ".join(lines[-n:]) or f"empty log {path}"


def _wait(what: str, ready, procs: dict[str, subprocess.Popen], logs: dict[str, Path]) -> None:
    """Poll `ready()` until it holds; skip when a daemon exits or the deadline passes."""
    deadline = time.time() + START_S
    while not ready():
        for name, proc in procs.items():
            if proc.poll() is not None:
                pytest.skip(f"{name} exited with status {proc.returncode}: {_tail(logs[name])}")
        if time.time() > deadline:
            name = list(procs)[-1]
            pytest.skip(f"{what} not within {START_S} s: {name}: {_tail(logs[name])}")
        time.sleep(0.2)


def _node_line() -> tuple[str, str, int]:
    """This host as slurmd sees it: (NodeName=... CPUs=... RealMemory=..., the node name, its CPUs)."""
    out = subprocess.run([shutil.which("slurmd", path=SBIN), "-C"], capture_output=True, text=True, timeout=30)
    line = next((x for x in out.stdout.splitlines() if x.startswith("NodeName=")), None)
    if out.returncode != 0 or line is None:
        pytest.skip(f"slurmd -C failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    return line, fields["NodeName"], int(fields["CPUs"])


def _conf(root: Path, node_line: str, node: str, user: str) -> str:
    return f"""\
ClusterName=harness-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
KillWait=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root / "jobcomp.txt"}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def slurm_cluster():
    missing = [b for b in (*DAEMONS, "munge", *CLIENTS) if shutil.which(b, path=SBIN) is None]
    if missing:
        pytest.skip(
            f"SLURM/munge is not installed (apt-get install slurm-wlm munge, or make system-deps): no {missing[0]}"
        )
    user = pwd.getpwuid(os.geteuid()).pw_name
    root = Path(tempfile.mkdtemp(prefix="harness-slurm-"))
    os.chmod(root, 0o755)  # munged: every directory above its socket must be searchable by all
    for d in ("munge", "state", "spool"):
        (root / d).mkdir()
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = root / "munge" / "munge.socket"
    previous = os.environ.get("SLURM_CONF")
    procs: dict[str, subprocess.Popen] = {}
    logs = {"munged": root / "munge" / "munged.log", "slurmctld": root / "slurmctld.log", "slurmd": root / "slurmd.log"}
    try:
        munged = [
            shutil.which("munged", path=SBIN),
            "--foreground",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={root / 'munge' / 'munged.pid'}",
            f"--log-file={logs['munged']}",
            f"--seed-file={root / 'munge' / 'munged.seed'}",
        ]
        procs["munged"] = subprocess.Popen(munged, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait("munged did not answer", lambda: _munge_works(sock), procs, logs)

        node_line, node, cpus = _node_line()
        conf = root / "slurm.conf"
        conf.write_text(_conf(root, node_line, node, user))
        env = {**os.environ, "SLURM_CONF": str(conf)}
        out = subprocess.DEVNULL
        procs["slurmctld"] = subprocess.Popen(
            [shutil.which("slurmctld", path=SBIN), "-D", "-i"], env=env, stdout=out, stderr=out
        )
        procs["slurmd"] = subprocess.Popen(
            [shutil.which("slurmd", path=SBIN), "-D", "-N", node], env=env, stdout=out, stderr=out
        )
        _wait("the node was not idle", lambda: _sinfo(env) == "idle", procs, logs)
        os.environ["SLURM_CONF"] = str(conf)
        yield SlurmCluster(root, conf, node, cpus)
    finally:
        if "slurmctld" in procs and procs["slurmctld"].poll() is None:
            env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
            subprocess.run(["scancel", "--user", user], env=env, capture_output=True, timeout=30)
            deadline = time.time() + 30
            while _squeue(env) and time.time() < deadline:  # the jobs' processes end before slurmd does
                time.sleep(0.2)
        for name in reversed(list(procs)):
            _stop(procs[name])
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(root, ignore_errors=True)


def _munge_works(sock: Path) -> bool:
    if not sock.exists():
        return False
    cred = subprocess.run(["munge", "-n", "-S", str(sock)], capture_output=True, timeout=10)
    return cred.returncode == 0 and cred.stdout.startswith(b"MUNGE:")


def _sinfo(env: dict) -> str:
    r = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=env, capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else ""


def _squeue(env: dict) -> list[str]:
    r = subprocess.run(["squeue", "--noheader", "--format=%i"], env=env, capture_output=True, text=True, timeout=30)
    return r.stdout.split() if r.returncode == 0 else []
