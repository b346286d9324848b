"""A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd from Debian's
packages, started without systemd with a slurm.conf generated for this machine.

Needs root (slurmd runs jobs as their users) and the packages slurmctld, slurmd, slurm-client
and munge (scripts/setup.sh --tests installs them). Slurm's ports 6817/6818 are fixed: one
cluster per machine at a time, so a stale one of an earlier run (its daemons carry
GRIDEXP_TEST_SLURM=1 in their environment) is stopped first; a slurmctld or slurmd that is not
ours (a real cluster's) is never touched: the tests do not run there.

Settings that make the tests fast: AuthInfo=cred_expire=5 (a requeued job may start again
after 5 s instead of ~2.5 min), scheduling every second, KillWait=30 (SIGKILL 30 s after
SIGTERM, as on real clusters), MinJobAge=600 (`scontrol show job` keeps ended jobs: there is
no accounting, so no sacct), and OverSubscribe=FORCE:4 (several tasks share a core).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

SLURM_PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "scontrol", "scancel", "squeue")
DAEMONS = ("slurmctld", "slurmd")
OURS = b"GRIDEXP_TEST_SLURM=1"  # in the environment of the daemons the tests start


class SlurmCluster:
    """munged + slurmctld + slurmd on this machine; `environment()` for sbatch & co."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.config = directory / "slurm.conf"
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    @staticmethod
    def missing() -> str | None:
        """Why a cluster cannot start here, or None."""
        if os.geteuid() != 0:
            return "a Slurm cluster needs root (slurmd starts jobs as their users)"
        absent = [name for name in SLURM_PROGRAMS if not _program(name)]
        if absent:
            return (
                f"{', '.join(absent)} not found: apt-get install slurmctld slurmd slurm-client "
                "munge (scripts/setup.sh --tests)"
            )
        foreign = _daemons(ours=False)
        if foreign:
            return (
                f"a slurmctld or slurmd not started by the tests runs here (pids {foreign}): "
                "the test cluster needs Slurm's ports 6817/6818 to itself"
            )
        return None

    def environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment["SLURM_CONF"] = str(self.config)
        for name in list(environment):  # a test run inside a Slurm job must not leak its own
            if name.startswith("SLURM_") and name != "SLURM_CONF":
                del environment[name]
        return environment

    def start(self, timeout: float = 60) -> SlurmCluster:
        _stop_stale_daemons()
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in ("state", "spool", "log"):
            (self.directory / name).mkdir(exist_ok=True)
        self._start_munge()
        self.config.write_text(self._slurm_conf())
        environment = {**self.environment(), OURS.split(b"=")[0].decode(): "1"}
        self._spawn([_program("slurmctld"), "-D", "-i"], "slurmctld", environment)
        self._wait(lambda: self._scontrol("ping").returncode == 0, timeout, "slurmctld")
        self._spawn([_program("slurmd"), "-D", "-N", "localhost"], "slurmd", environment)
        self._wait(self._node_ready, timeout, "slurmd (node localhost idle)")
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        _stop_stale_daemons()

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=60,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)}: exit {completed.returncode}\n{completed.stderr}"
            )
        return completed

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """`scontrol show job JOB_ID` of an array: one dict per task (JobState, ExitCode,
        ArrayTaskId, Restarts, ...), ordered by ArrayTaskId."""
        completed = self._scontrol("show", "job", "-o", job_id)
        if completed.returncode != 0:
            return []
        records = [_fields(line) for line in completed.stdout.splitlines() if line.strip()]
        return sorted(records, key=_task_order)

    def wait_until_ended(self, job_id: str, tasks: int, timeout: float) -> list[dict[str, str]]:
        """Waits until `tasks` array tasks of `job_id` have ended; their records."""
        ended_states = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
        deadline = time.monotonic() + timeout
        records: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            records = self.jobs(job_id)
            if len(records) == tasks and all(r.get("JobState") in ended_states for r in records):
                return records
            time.sleep(0.5)
        raise AssertionError(
            f"job {job_id} did not end in {timeout} s: "
            + "; ".join(f"{r.get('JobId')} {r.get('JobState')}" for r in records)
            + "\n"
            + self.daemon_logs()
        )

    def daemon_logs(self, last: int = 40) -> str:
        text = []
        for path in self.logs:
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            text.append(f"--- {path.name}\n" + "\n".join(lines[-last:]))
        return "\n".join(text)

    def _start_munge(self) -> None:
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run([_program("mungekey") or "mungekey", "--create"], check=True)
        munge = pwd.getpwnam("munge")
        for directory in (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge")):
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, munge.pw_uid, munge.pw_gid)
        os.chown(key, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o400)
        if _pids_named("munged"):
            return  # one munged serves any number of clusters
        subprocess.run(
            ["runuser", "-u", "munge", "--", _program("munged"), "--force"],
            check=True,
            capture_output=True,
        )

    def _slurm_conf(self) -> str:
        node = _this_node()
        user = pwd.getpwuid(os.geteuid()).pw_name
        directory = self.directory
        return "\n".join(
            [
                "ClusterName=gridexptest",
                "SlurmctldHost=localhost",
                f"SlurmUser={user}",
                f"SlurmdUser={user}",
                f"StateSaveLocation={directory / 'state'}",
                f"SlurmdSpoolDir={directory / 'spool'}",
                f"SlurmctldPidFile={directory / 'slurmctld.pid'}",
                f"SlurmdPidFile={directory / 'slurmd.pid'}",
                f"SlurmctldLogFile={directory / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={directory / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "MailProg=/bin/true",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                "AuthInfo=cred_expire=5",
                "SchedulerParameters=bf_interval=1,sched_interval=1",
                "ReturnToService=2",
                "KillWait=30",
                "MinJobAge=600",
                "SlurmdTimeout=300",
                "InactiveLimit=0",
                "MaxArraySize=1001",
                f"NodeName=localhost NodeHostname=localhost {node} State=UNKNOWN",
                "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE "
                "OverSubscribe=FORCE:4 State=UP",
                "",
            ]
        )

    def _spawn(self, command: list[str], name: str, environment: dict[str, str]) -> None:
        log = self.directory / "log" / f"{name}.out"
        self.logs += [log, self.directory / "log" / f"{name}.log"]
        with open(log, "w") as output:
            self.processes.append(
                subprocess.Popen(
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    start_new_session=True,
                )
            )

    def _scontrol(self, *arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_program("scontrol"), *arguments],
            check=False,
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=30,
        )

    def _node_ready(self) -> bool:
        completed = self._scontrol("show", "node", "-o", "localhost")
        state = _fields(completed.stdout).get("State", "") if completed.returncode == 0 else ""
        return state.startswith("IDLE") or state.startswith("MIXED")

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(
                        f"{what}: a Slurm daemon exited ({process.args[0]}, status "
                        f"{process.returncode})\n{self.daemon_logs()}"
                    )
            if ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what} not ready in {timeout} s\n{self.daemon_logs()}")


def _program(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


def _this_node() -> str:
    """This machine's CPUs as slurmd sees them (`slurmd -C`), for the NodeName line."""
    completed = subprocess.run(
        [_program("slurmd"), "-C"], capture_output=True, text=True, check=True
    )
    fields = _fields(completed.stdout.splitlines()[0])
    sockets = int(fields.get("SocketsPerBoard", "1")) * int(fields.get("Boards", "1"))
    return (
        f"CPUs={fields['CPUs']} Sockets={sockets} CoresPerSocket={fields['CoresPerSocket']} "
        f"ThreadsPerCore={fields['ThreadsPerCore']} RealMemory={fields.get('RealMemory', '1')}"
    )


def _task_order(record: dict[str, str]) -> int:
    task = record.get("ArrayTaskId", "0")
    return int(task) if task.isdigit() else 1 << 30  # "1-2": the tasks not started yet


def _fields(line: str) -> dict[str, str]:
    """`Key=Value Key=Value` (as scontrol -o and slurmd -C print) into a dict."""
    return dict(re.findall(r"(\w+)=(\S*)", line))


def _pids_named(*names: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    pids.append(int(entry.name))
            except OSError:
                continue  # ended meanwhile
    return pids


def _daemons(ours: bool) -> list[int]:
    """The slurmctld and slurmd processes the tests started (ours) or not."""
    pids = []
    for pid in _pids_named(*DAEMONS):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (OURS in environment) == ours:
            pids.append(pid)
    return pids


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop_stale_daemons() -> None:
    _signal_all(_daemons(ours=True), signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not _daemons(ours=True):
            return
        time.sleep(0.2)
    _signal_all(_daemons(ours=True), signal.SIGKILL)
