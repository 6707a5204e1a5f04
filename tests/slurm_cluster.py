"""A real single-node SLURM cluster from Debian's slurm-wlm and munge packages, everything in one temporary folder.

munged, slurmctld and slurmd run as root with their own socket, ports, state and PID files, so they neither need
nor disturb a system-wide SLURM; they are stopped by the PIDs in their PID files.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmCluster:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}

    def start(self, timeout_s=60):
        folder, host = self.folder, socket.gethostname().split(".")[0]
        for name in ("state", "spool", "munge"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        munge_socket = folder / "munge" / "munge.socket"
        subprocess.run(["munged", "--force", f"--socket={munge_socket}", f"--pid-file={folder / 'munged.pid'}",
                        f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}"],
                       check=True, capture_output=True, timeout=30)
        self.conf.write_text("\n".join([
            "ClusterName=tests", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
            # cred_expire also sets how long a requeued job waits before it starts again (120 s by default).
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={munge_socket},cred_expire=5",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
            # A requeued job waits for its begin time (cred_expire), then for the main scheduler's next pass over
            # pending jobs: every 60 s by default, and a requeue test waited 20 to 50 s for it.
            "ReturnToService=2", "JobRequeue=1", "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
            # Finished jobs are kept listed briefly.
            "MinJobAge=300", "KillWait=30",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}", f"SlurmdLogFile={folder / 'slurmd.log'}",
            f"NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")
        env = {**os.environ, **self.env}
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, capture_output=True, env=env, timeout=30)
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True, capture_output=True, env=env, timeout=30)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "--noheader", "-o", "%T"], capture_output=True, text=True, env=env)
            if state.returncode == 0 and state.stdout.strip() in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the SLURM node did not become idle within {timeout_s}s: {state.stdout}{state.stderr}"
                           f"\n{self.log('slurmctld')}\n{self.log('slurmd')}")

    def log(self, daemon):
        path = self.folder / f"{daemon}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self):
        for daemon in reversed(DAEMONS):
            pid_file = self.folder / f"{daemon}.pid"
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child that exited) counts as ended.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
