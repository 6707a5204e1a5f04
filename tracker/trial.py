"""One sweep trial as a submitit job: runs the experiment as an ordinary tracked run, continuing an interrupted one.

The job runs `python SCRIPT with UPDATES` in a subprocess, so the trial is a normal run with the durable observer;
its info records the sweep (id, trial number, swept parameters) and its tags the sweep's Omniboard tag. When this
trial's newest run was interrupted with a checkpoint (Ctrl-C, SLURM preemption or time limit), the job continues it
from there, as `tracker resume` does. On SLURM, submitit calls `checkpoint` on the warning signal before a time
limit or preemption: the experiment stores its checkpoint, and submitit requeues this job, which then continues it.
A job of several tasks (--slurm tasks_per_node=N) trains the trial with DistributedDataParallel: each task gets
torchrun's environment from submitit and runs the experiment as one rank; task 0's rank records the run, reads the
checkpoint it continues from and hands it to the others (ingredients.distributed), so only task 0 keeps the books.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from observers.origin import Handoff
from runstore.run_store import handed_back_run, mark_continued, newest_run_with_info
from tracker.resume import continuation

if TYPE_CHECKING:
    import subprocess

    import submitit

    from runstore.run_store import StoredRun

ERROR_LINES = 5  # lines of a failed trial's traceback shown by the sweep


def sweep_tag(sweep_id: int | str) -> str:
    """The Omniboard tag of every run of a sweep."""
    return f"sweep-{sweep_id}"


@dataclass(frozen=True)
class TrialOutcome:
    """What the sweep needs to know of a trial: its run (None when none was recorded), status and result, the end of
    its error, and what its run recorded of its direction and pruning. A trial's job returns it to the sweep."""

    status: str  # the run's, or FAILED or INTERRUPTED when there is no run
    error: str  # the end of a failed run's error (for a process killed before Sacred could record one, the signal)
    run: int | str | None = None  # StoredRun.origin: the database id, or the run folder
    result: Any = None
    higher_is_better: bool | None = None
    pruned_at_step: int | None = None


@dataclass
class Trial:
    sweep: int
    number: int
    script: str
    updates: list[str]  # the `with` updates: the sweep's fixed ones, then this trial's parameters
    params: dict[str, Any]  # the swept parameters, {key: value}
    cwd: str  # where the sweep was started: relative paths (script, RUNS_DIR, data) mean the same in the job
    stop_file: str  # exists once the sweep is cancelled: a trial that has not started its experiment then does not
    pruning: dict[str, Any] | None = None  # the study's pruner for the experiment to report to (ingredients.pruning)
    threads: int | None = None  # torch threads (OMP_NUM_THREADS) for the experiment; None: its default, all cores
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)  # while it runs

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "process": None}

    def __call__(self) -> TrialOutcome | None:
        """Run (or continue) the trial; returns its outcome (None on the ranks above 0 of a DDP trial)."""
        import submitit

        # Imported here, in the job: GitPython cannot even be imported without a git executable, which the other
        # `tracker` commands do without.
        from tracker.launch import experiment_env, run_in_foreground

        os.chdir(self.cwd)
        task = submitit.JobEnvironment()
        if task.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
            if task.global_rank > 0:
                self.run_another_rank()
                return None
        info: dict[str, Any] = {"sweep": {"id": self.sweep, "trial": self.number, "params": self.params},
                                "tags": [sweep_tag(self.sweep)]}
        updates = list(self.updates)
        options: list[str] = []
        previous = self.newest_run()
        if previous is not None and previous.doc.get("status") == "COMPLETED":
            return outcome(previous)  # finished already (a job requeued after its run ended)
        with tempfile.TemporaryDirectory(prefix="tracker-trial-") as folder:
            continued = continuation(previous, Path(folder)) if previous is not None else None
            if previous is not None and continued is not None:
                info.update(continued[0])
                options = continued[1]
                updates.append(f"seed={previous.config['seed']!r}")  # as `tracker resume`: the run's own seed
            if Path(self.stop_file).exists():  # cancelled while this job started, too early for Ctrl-C to reach
                return TrialOutcome("INTERRUPTED", "the sweep was cancelled")
            handoff = Handoff.create(Path(folder), info, pruning=self.pruning)
            returncode = run_in_foreground(
                [sys.executable, self.script, *options, "with", *updates], experiment_env(self.env(handoff)),
                started=self.started, ignored_signals=(signal.SIGUSR2,),
            )
            latest = handed_back_run(handoff.answered())
        if latest is None:
            return outcome(None, returncode)  # it recorded no run
        if previous is not None:  # the trial's new run stands for the previous one now
            mark_continued(previous, latest.origin)
        return outcome(latest, returncode)

    def run_another_rank(self) -> None:
        """Train as one of the ranks above 0, which record nothing (task 0 returns the outcome)."""
        from tracker.launch import experiment_env, run_in_foreground

        previous = self.newest_run()
        if Path(self.stop_file).exists() or (previous is not None and previous.doc.get("status") == "COMPLETED"):
            return None  # task 0 does not start the experiment either
        with tempfile.TemporaryDirectory(prefix="tracker-trial-") as folder:
            handoff = Handoff.create(Path(folder), {}, pruning=self.pruning)  # every rank may ask the pruner
            run_in_foreground([sys.executable, self.script, "with", *self.updates], experiment_env(self.env(handoff)),
                              started=self.started, ignored_signals=(signal.SIGUSR2,))
        return None

    def env(self, handoff: Handoff) -> dict[str, str]:
        """What the experiment's environment adds: the handoff, and the number of torch threads when it is set."""
        return {**handoff.env(), **({"OMP_NUM_THREADS": str(self.threads)} if self.threads is not None else {})}

    def started(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def newest_run(self) -> StoredRun | None:
        """This trial's newest run, if an earlier job of it recorded one (requeued, or continued by the sweep)."""
        return newest_run_with_info({"sweep.id": self.sweep, "sweep.trial": self.number})

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on SLURM's warning signal: stop the experiment at a checkpoint, then requeue."""
        import submitit

        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)  # the trainer stores checkpoint.pt and the run ends INTERRUPTED
            # Wait without reaping: the wait this signal interrupted reaps it and holds Popen's lock meanwhile.
            os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOWAIT)
        return submitit.helpers.DelayedSubmission(Trial(self.sweep, self.number, self.script, self.updates,
                                                        self.params, self.cwd, self.stop_file, self.pruning))


def outcome(stored: StoredRun | None, returncode: int = 0) -> TrialOutcome:
    """The TrialOutcome of a trial whose experiment exited with `returncode` and recorded the run `stored` (None: it
    recorded none)."""
    if stored is None:
        return TrialOutcome("FAILED", f"no run was recorded ({exit_reason(returncode) or f'exit {returncode}'})")
    trace = stored.doc.get("fail_trace") or []
    lines = "".join(trace).strip().splitlines()[-ERROR_LINES:]
    error = "\n".join(lines) or exit_reason(returncode) or f"the experiment exited with status {returncode}"
    return TrialOutcome(stored.doc.get("status") or "FAILED", error, stored.origin, stored.doc.get("result"),
                        stored.info.get("higher_is_better"), stored.info.get("pruned_at_step"))


def exit_reason(returncode: int) -> str | None:
    """'killed by signal 9 (SIGKILL)' for a process that a signal ended, else None."""
    if returncode >= 0:
        return None
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"killed by signal {-returncode}"
    return f"killed by signal {-returncode} ({name})"
