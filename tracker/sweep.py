"""`tracker sweep`: run an experiment over a grid, random draws or an Optuna study, each trial an ordinary tracked run.

Trials are submitit jobs (tracker.trial.Trial): local processes (--executor local) or SLURM jobs (--executor slurm),
so a sweep outgrows one machine without changing. The sweep's record (its arguments and every trial's run, status
and result) is kept in sweeps/<id>/sweep.json beside RUNS_DIR, with submitit's job logs and the Optuna journal, and
in MongoDB's `sweeps` collection when MongoDB answers; `--continue` reads it back.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from pymongo.errors import DuplicateKeyError, PyMongoError

from runstore.atomic_file import write_atomically
from runstore.database import connect
from runstore.errors import UserError
from runstore.plain_json import plain_arguments, plain_values, sacred_value
from runstore.settings import create_tracker_folder, load_settings
from runstore.shell import last_line, shell_command
from observers.upload import highest_id
from ingredients.pruning import PRUNERS, make_pruner, open_journal
from tracker.options import given_data_root
from tracker.search_space import as_updates, grid, new_seeds, split_arguments
from tracker.trial import Trial, TrialOutcome, sweep_tag

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    import optuna
    import submitit
    from pymongo.database import Database
    from typing_extensions import NotRequired

    from runstore.settings import Settings
    from tracker.search_space import Parameter

EXECUTORS = ("local", "slurm")
POLL_S = 1.0  # how often job states are checked
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local executor stops jobs after 2 minutes unless told otherwise
CANCEL_WAIT_S = 120  # after Ctrl-C, how long local trials get to store their checkpoints
RECORD_FILE = "sweep.json"
RECORD_CODE_FIELDS = ("_id", "script", "arguments", "cwd", "folder", "search")  # what the trials run, and where
# Why SLURM ended a job, by its final state (sacct's, as submitit reports it), in the words a failed trial shows.
SLURM_REASONS = {"TIMEOUT": "exceeded the time limit", "OUT_OF_MEMORY": "out of memory",
                 "CANCELLED": "cancelled (scancel)", "NODE_FAIL": "its node failed", "PREEMPTED": "preempted",
                 "DEADLINE": "reached its deadline"}


class TrialRecord(TypedDict):
    """One trial in a sweep's record."""

    number: int
    params: dict[str, Any]  # the swept parameters, {key: value}
    status: str  # QUEUED, RUNNING, COMPLETED, PRUNED, FAILED or INTERRUPTED
    run: int | str | None  # its newest run (TrialOutcome.run)
    result: Any
    runs: list[int | str]  # every run it recorded: a continued trial has several
    pruned_at_step: NotRequired[int]  # when PRUNED


class SweepRecord(TypedDict):
    """A sweep's record: sweeps/ID/sweep.json, and its document in MongoDB's `sweeps` (other versions of the project
    read both: keys are only ever added)."""

    _id: NotRequired[int]  # given by create_record, with `folder`
    folder: NotRequired[str]  # sweeps/ID, absolute
    script: str  # absolute
    arguments: list[str]  # the `with` arguments, fixed and swept
    search: str  # grid, random or optuna
    direction: Literal["maximize", "minimize"] | None  # None until the first run records higher_is_better
    budget: int  # trials
    cwd: str  # where it was started
    prune: str | None  # the pruner (--prune)
    sampler_seed: int | None
    started: str  # ISO time
    status: str  # RUNNING, COMPLETED or INTERRUPTED
    trials: list[TrialRecord]  # an Optuna sweep's grow as they are asked for
    seeds: list[int] | None  # --seeds
    executor: NotRequired[str]  # local or slurm: these three are set, again with --continue, before it runs
    slurm: NotRequired[dict[str, Any]]  # submitit's SLURM parameters
    parallel: NotRequired[int | None]


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sweep",
        usage="tracker sweep [OPTIONS] SCRIPT with [FIXED ...] KEY=[A,B] KEY=DISTRIBUTION(...) ...\n"
              "       tracker sweep --continue SWEEP [--parallel K] [--executor local|slurm] [--slurm KEY=VALUE] "
              "[with data.root=PATH]",
        help="run an experiment over a grid, random draws or an Optuna search; every trial is a tracked run",
        description=(
            "Run SCRIPT once per trial with the fixed updates plus the trial's parameters. KEY=[A,B,...] sweeps a "
            "list (the grid of all lists by default); with --random N or --optuna N also loguniform(LOW,HIGH), "
            "uniform(LOW,HIGH), intuniform(LOW,HIGH) and choice(A,B,...). Each trial's run records the sweep in "
            "its info and carries the Omniboard tag sweep-ID. Exit status: the number of failed trials."
        ),
    )
    parser.add_argument("command", nargs="*", metavar="SCRIPT with ARGUMENTS",
                        help="the experiment and its `with` arguments, fixed and swept")
    search = parser.add_mutually_exclusive_group()
    search.add_argument("--random", type=int, metavar="N", help="N trials with parameters drawn at random")
    search.add_argument("--optuna", type=int, metavar="N", help="N trials chosen by Optuna (TPE) from the results")
    parser.add_argument("--prune", choices=PRUNERS,
                        help="with --optuna: stop trials whose validation score Optuna's median or Hyperband pruner "
                             "finds hopeless (they end COMPLETED with info.pruned_at_step)")
    parser.add_argument("--sampler-seed", type=int, metavar="S",
                        help="seed of the random draws (--random) or of Optuna's sampler, for a repeatable search")
    parser.add_argument("--direction", choices=("maximize", "minimize"),
                        help="whether a larger or smaller run result is better (default: the experiment's own, "
                             "which its runs record as higher_is_better)")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="run every configuration with the same N seeds, drawn at random: seed becomes a swept "
                             "key, so `tracker runs --group` gives each configuration's mean and confidence interval")
    parser.add_argument("--executor", help="local (default: processes on this machine) or slurm (jobs on SLURM)")
    parser.add_argument("--parallel", type=int, metavar="K",
                        help="trials at once (default: 1 on local, every trial on slurm, queued by SLURM); local "
                             "trials share the CPU cores as torch threads, unless OMP_NUM_THREADS is set")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="a submitit SLURM parameter, e.g. partition=gpu, gpus_per_node=1, timeout_min=60")
    parser.add_argument("--continue", dest="continue_sweep", metavar="SWEEP",
                        help="run the trials of sweep SWEEP (an id, or its folder) that have not completed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    client = connect(settings)
    db = client[settings.db_name] if client is not None else None
    given: list[str] = []  # `with data.root=PATH` given again with --continue, after each trial's own updates
    if args.continue_sweep:
        if args.random or args.optuna or args.prune:
            raise UserError("--continue SWEEP takes the sweep's own script and parameters; give only --parallel, "
                            "--executor, --slurm or `with data.root=PATH` with it")
        given = given_data_root(args.command, "tracker sweep --continue runs the sweep's own script and parameters",
                                f"tracker sweep --continue {args.continue_sweep}")
        record = load_record(args.continue_sweep, settings, db)
        check_data_roots(record, given)
    else:
        record = new_record(args)
    # Given again with --continue, these replace the recorded ones (e.g. a sweep moved to SLURM).
    record["executor"] = args.executor or record.get("executor") or "local"
    recorded_slurm = record.get("slurm", {}) if record["executor"] == "slurm" else {}
    record["slurm"] = {**recorded_slurm, **slurm_parameters(args.slurm)}
    record["parallel"] = args.parallel if args.parallel is not None else record.get("parallel")
    if record["parallel"] is not None and record["parallel"] < 1:
        raise UserError(f"--parallel {record['parallel']} must be at least 1, e.g. --parallel 2")
    with tempfile.TemporaryDirectory(prefix="tracker-sweep-") as scratch:
        make_executor(record, Path(scratch))  # refuses bad settings before anything is recorded or submitted
    if not args.continue_sweep:
        check_config(record)
        create_record(record, settings, db)
    return Sweep(record, db, given).run()


# ---- a new sweep ----------------------------------------------------------------------------------------------
def new_record(args: argparse.Namespace) -> SweepRecord:
    if not args.command:
        raise UserError("give the experiment and its sweep, e.g. tracker sweep experiments/cifar.py with smoke "
                        "'lr=[0.01,0.05]'")
    script, *arguments = args.command
    if arguments[:1] == ["with"]:
        arguments = arguments[1:]
    if not Path(script).is_file():
        raise UserError(f"{script} is not a file; give the experiment's script, e.g. experiments/cifar.py")
    fixed, parameters = split_arguments(arguments)
    if not parameters:
        raise UserError("nothing is swept; give a list or a distribution, e.g. 'lr=[0.01,0.05]' or "
                        "'lr=loguniform(1e-3,0.3)' with --random 8")
    for option in ("random", "optuna", "seeds"):
        count = getattr(args, option)
        if count is not None and count < 1:
            raise UserError(f"--{option} {count} must be at least 1, e.g. --{option} 8")
    search = "random" if args.random else "optuna" if args.optuna else "grid"
    if args.prune and search != "optuna":
        raise UserError(f"--prune {args.prune} needs an Optuna search, which reports to the pruner; add --optuna N")
    seeds = draw_seeds(args.seeds, parameters, search) if args.seeds else None
    record: SweepRecord = {
        "script": str(Path(script).resolve()), "arguments": arguments, "search": search,
        "direction": args.direction, "budget": args.random or args.optuna or 0, "cwd": os.getcwd(),
        "prune": args.prune, "sampler_seed": args.sampler_seed,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "status": "RUNNING", "trials": [], "seeds": seeds,
    }
    if search == "grid":
        configurations = grid(parameters)
    elif search == "random":
        rng = random.Random(args.sampler_seed)
        configurations = [{p.key: p.sample(rng) for p in parameters} for _ in range(args.random)]
    if search != "optuna":
        repeated = ([{**params, "seed": seed} for params in configurations for seed in seeds] if seeds
                    else configurations)
        record["trials"] = [new_trial(number, params) for number, params in enumerate(repeated)]
        record["budget"] = len(record["trials"])
    return record


def draw_seeds(count: int, parameters: list[Parameter], search: str) -> list[int]:
    """`count` different seeds, the same for every configuration, so that configurations meet the same draws."""
    if search == "optuna":
        raise UserError("--seeds repeats the configurations of a grid or --random sweep; an --optuna trial is one run, "
                        "so leave out --seeds or use --random N")
    if any(parameter.key == "seed" for parameter in parameters):
        raise UserError("seed is swept already; give either --seeds N or a list of seeds, e.g. 'seed=[1,2,3]'")
    return new_seeds(count)


def new_trial(number: int, params: dict[str, Any]) -> TrialRecord:
    return {"number": number, "params": params, "status": "QUEUED", "run": None, "result": None, "runs": []}


def check_config(record: SweepRecord) -> None:
    """Refuse, in one line, a sweep whose first trial's config Sacred rejects (e.g. a misspelt key)."""
    first = record["trials"][0]["params"] if record["trials"] else {}
    fixed, _ = split_arguments(record["arguments"])
    updates = [*fixed, *as_updates(first)]
    command = [sys.executable, record["script"], "print_config", *(["with", *updates] if updates else [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise UserError(f"{Path(record['script']).name} rejects the sweep's config ({last_line(result.stderr)}); "
                        f"fix the `with` arguments")


# ---- where sweeps are recorded --------------------------------------------------------------------------------
def create_record(record: SweepRecord, settings: Settings, db: Database[Any] | None) -> None:
    """Give the sweep the next free id (in MongoDB's `sweeps` and in sweeps/), its folder, and store its record."""
    folder = create_tracker_folder(settings.sweeps_dir)
    taken = [int(path.name) for path in folder.iterdir() if path.name.isdigit()]
    if db is not None:
        taken.append(highest_id(db.sweeps))
    sweep_id = max(taken, default=0) + 1
    while True:  # insert-and-retry, as run ids: sweeps started at the same moment get different ids
        try:
            (folder / str(sweep_id)).mkdir()
            if db is not None:
                db.sweeps.insert_one({"_id": sweep_id})
            break
        except (FileExistsError, DuplicateKeyError) as error:
            if isinstance(error, DuplicateKeyError):
                (folder / str(sweep_id)).rmdir()
            sweep_id += 1
    record["_id"], record["folder"] = sweep_id, str((folder / str(sweep_id)).resolve())


def load_record(reference: str, settings: Settings, db: Database[Any] | None) -> SweepRecord:
    """The record of sweep `reference` (its id, or its folder), once it is known to run only this checkout's code.

    The record is in sweeps/ID/sweep.json and, when MongoDB answers, in its `sweeps` collection; a record in a shared
    database may have been edited, so where both exist they must agree on what runs (RECORD_CODE_FIELDS).
    """
    folder = Path(reference) if Path(reference, RECORD_FILE).is_file() else settings.sweeps_dir / reference
    local: dict[str, Any] | None = (json.loads((folder / RECORD_FILE).read_text())
                                    if (folder / RECORD_FILE).is_file() else None)
    stored = db.sweeps.find_one({"_id": int(reference)}) if reference.isdigit() and db is not None else None
    if stored is not None and "trials" not in stored:  # only its id is taken yet: the sweep never started
        stored = None
    record = stored if stored is not None else local
    if record is None:
        raise UserError(f"there is no sweep {reference!r} in MongoDB or in {settings.sweeps_dir}/; give the id "
                        f"'tracker sweep' printed, or the sweep's folder")
    label = f"sweep {record.get('_id', reference)}"
    check_record(record, label, settings, stored, local, folder / RECORD_FILE)
    return cast("SweepRecord", record)  # check_record has checked what it runs


def check_record(record: dict[str, Any], label: str, settings: Settings, stored: dict[str, Any] | None,
                 local: dict[str, Any] | None, local_file: Path) -> None:
    """Refuse a record that would start code from elsewhere, or whose copies in MongoDB and on disk disagree."""
    from tracker.launch import NOT_RUN, inside_checkout, repository_root, trusted_checkouts

    for copy, where in ((stored, "MongoDB"), (local, local_file)):
        if copy is not None:  # its trials' parameters and fixed arguments become `with` arguments
            plain_values(copy, label, f"record in {where}", path="")
            plain_arguments(copy.get("arguments"), label, f"record in {where}", path="arguments")
            for index, trial in enumerate(copy.get("trials") or []):  # as the trial gets them: a key may hide a value
                params = trial.get("params") if isinstance(trial, dict) else None
                if not isinstance(params, dict):
                    raise UserError(f"{label}'s record in {where} holds {str(params)[:40]!r} at "
                                    f"trials[{index}].params, not an object of parameters; {NOT_RUN}")
                plain_arguments(as_updates(params), label, f"record in {where}", path=f"trials[{index}].params")
    if stored is not None and local is not None:
        local_params = {trial.get("number"): trial.get("params") for trial in local.get("trials", [])}
        fields = [(field, stored.get(field), local.get(field)) for field in RECORD_CODE_FIELDS] + [
            (f"trial {trial.get('number')}'s params", trial.get("params"), local_params.get(trial.get("number")))
            for trial in stored["trials"]]  # the file is written first: a trial only in MongoDB was put there
        for field, in_database, in_file in fields:
            if in_database != in_file:
                raise UserError(f"{label}'s {field} in MongoDB ({in_database!r}) differs from the one in "
                                f"{local_file} ({in_file!r}); {NOT_RUN}")
    expected = (settings.sweeps_dir / str(record.get("_id"))).resolve()
    if not isinstance(record.get("folder"), str) or Path(record["folder"]).resolve() != expected:
        raise UserError(f"{label}'s folder {record.get('folder')!r} is not {expected}, where this project keeps it; "
                        f"{NOT_RUN}")
    for field, checkouts in (("script", trusted_checkouts()), ("cwd", [repository_root(Path.cwd())])):
        if not isinstance(record.get(field), str):
            raise UserError(f"{label}'s {field} {record.get(field)!r} is not a path; {NOT_RUN}")
        inside_checkout(label, field, record[field], checkouts)


def check_data_roots(record: SweepRecord, given: list[str]) -> None:
    """Refuse, as a rerun does (launch.check_data_root), a data.root that the record's fixed arguments, trials or
    swept lists set outside the experiment's data folder, unless the user gives data.root again (`given`)."""
    from tracker.launch import check_data_root, experiment_defaults, experiment_env

    fixed, parameters = split_arguments(record["arguments"])
    label = f"sweep {record['_id']}"
    configurations = [(label, fixed)]
    configurations += [(f"{label}'s trial {trial['number']}", [*fixed, *as_updates(trial["params"])])
                       for trial in record["trials"]]
    configurations += [(label, [*fixed, *as_updates({parameter.key: value})])  # Optuna's trials still to come
                       for parameter in parameters if parameter.kind in ("grid", "choice")
                       for value in parameter.values]
    stored = [SimpleNamespace(label=name, config=updated_config(updates)) for name, updates in configurations]
    setting_root = [each for each in stored
                    if isinstance(each.config.get("data"), dict) and "root" in each.config.get("data")]
    if given or not setting_root:  # the experiment's defaults take a process to read: only when they matter
        return
    defaults = experiment_defaults(Path(record["script"]), experiment_env())
    if defaults is None:  # the script ignores its command line
        return
    for each in setting_root:
        check_data_root(each, defaults, ())


def updated_config(updates: list[str]) -> dict[str, Any]:
    """The config values that `with` updates set, nested at their dotted keys; named configs (this checkout's code)
    set none."""
    config: dict[str, Any] = {}
    for update in updates:
        key, separator, text = update.partition("=")
        if separator:
            *parents, last = key.strip().split(".")
            node = config
            for parent in parents:
                node[parent] = node[parent] if isinstance(node.get(parent), dict) else {}
                node = node[parent]
            node[last] = sacred_value(text)
    return config


# ---- executors ------------------------------------------------------------------------------------------------
def slurm_parameters(pairs: list[str]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise UserError(f"--slurm {pair!r} must be KEY=VALUE, e.g. --slurm partition=gpu")
        from compat.sacred import convert_value  # here: importing Sacred would slow every `tracker` command

        parameters[key] = convert_value(value)
    return parameters


def make_executor(record: SweepRecord, folder: Path) -> submitit.LocalExecutor | submitit.AutoExecutor:
    """The submitit executor for the record's settings, keeping its job logs in `folder`/jobs."""
    import submitit

    from compat.submitit import generic_parameters

    kind, slurm = record["executor"], record["slurm"]
    if kind not in EXECUTORS:
        raise UserError(f"unknown executor {kind!r}; use --executor local or --executor slurm")
    if kind == "local" and slurm:
        raise UserError("--slurm parameters need --executor slurm")
    jobs = folder / "jobs"
    if kind == "local":
        local = submitit.LocalExecutor(jobs)
        local.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return local
    executor = submitit.AutoExecutor(jobs, cluster="slurm")
    quiet_sacct_retries()
    generic = generic_parameters()
    executor.update_parameters(name=f"sweep-{record.get('_id', 'new')}")
    for key, value in slurm.items():
        try:
            executor.update_parameters(**{key if key in generic else f"slurm_{key}": value})
        except NameError:
            raise UserError(f"--slurm {key}=... is not a submitit SLURM parameter; use e.g. partition, timeout_min, "
                            f"gpus_per_node, cpus_per_task, mem_gb (submitit.SlurmExecutor's parameters)") from None
        except (AssertionError, ValueError, TypeError) as error:
            problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"submitit rejects the --slurm parameters {slurm} ({problem}); fix their values") from None
    require_slurm()
    return executor


class SacctRetries(logging.Filter):
    """Drops submitit's warning at each failed sacct poll (it polls again; a cluster without accounting fails every
    time), which would be mixed into the sweep's progress lines: the sweep reports each job's end itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


def quiet_sacct_retries() -> None:
    submitit_logger = logging.getLogger("submitit")
    if not any(isinstance(existing, SacctRetries) for existing in submitit_logger.filters):
        submitit_logger.addFilter(SacctRetries())


def require_slurm() -> None:
    """Refuse, in one line, a SLURM sweep when SLURM's commands or its controller do not answer."""
    if shutil.which("sbatch") is None:
        raise UserError("--executor slurm needs SLURM's sbatch, which is not on PATH; run on a SLURM login node, "
                        "or use --executor local")
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():  # SLURM's commands would retry reading it for a minute
        raise UserError(f"SLURM_CONF={conf} is not a file; point it at the cluster's slurm.conf, or unset it")
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--summarize"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        answer = subprocess.CompletedProcess([], 1, "", str(error))
    if answer.returncode != 0:
        raise UserError(f"SLURM is not reachable ({last_line(answer.stderr, 'no answer')}); check SLURM_CONF and that "
                        f"slurmctld runs, or use --executor local")


def gpu_ids() -> list[int]:
    """This machine's GPUs, as CUDA_VISIBLE_DEVICES numbers them for the jobs (asking nvidia-smi, not importing
    torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(gpu) for gpu in visible.split(",") if gpu.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    answer = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                            text=True, timeout=60)
    return [int(line) for line in answer.stdout.split() if line.isdigit()] if answer.returncode == 0 else []


def available_cores() -> int:
    """The CPU cores this process may use (its affinity where the system has one, as on Linux; else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def trial_threads(local: bool, parallel: int | None, environ: Mapping[str, str]) -> int | None:
    """Torch threads per trial when several trials of a local sweep run at once: the cores shared out, as torchrun
    does for its processes. Each trial taking every core makes them wait for each other's threads (2 at once on 2
    cores: 2.1 times the time, `python benchmarks/parallel_trials.py`). None (torch's default) for one trial at a
    time, on SLURM (a job has cores of its own), or when the user set OMP_NUM_THREADS."""
    if not local or parallel is None or parallel == 1 or "OMP_NUM_THREADS" in environ:
        return None
    return max(1, available_cores() // parallel)


# ---- running the trials ---------------------------------------------------------------------------------------
class Sweep:
    def __init__(self, record: SweepRecord, db: Database[Any] | None, given: Sequence[str] = ()) -> None:
        self.record = record
        self.given = list(given)  # updates the user gave again (data.root), after each trial's own
        self.db = db
        self.folder = Path(record["folder"])
        create_tracker_folder(self.folder)
        self.executor = make_executor(record, self.folder)
        self.local = record["executor"] == "local"
        self.gpus = gpu_ids() if self.local else []
        self.fixed, self.parameters = split_arguments(record["arguments"])
        self.trials = {trial["number"]: trial for trial in record["trials"]}
        self.study = self.open_study() if record["search"] == "optuna" else None
        self.running: dict[Any, int] = {}  # submitit job (with the GPU it was given as .gpu) -> trial number
        self.stop_file = self.folder / "cancelled"
        self.threads = trial_threads(self.local, record["parallel"], os.environ)
        self.cancelling = False
        self.shown: str | None = None

    def run(self) -> int:
        sweep_id = self.record["_id"]
        print(f"sweep {sweep_id}: {self.record['search']} search over {', '.join(p.key for p in self.parameters)}, "
              f"{self.record['budget']} trials on {self.record['executor']}"
              + (f" ({len(seeds)} seeds per configuration)" if (seeds := self.record.get("seeds")) else "")
              + f"; runs are tagged {sweep_tag(sweep_id)}; "
              f"record and job logs in {self.folder}", flush=True)
        if self.threads is not None:
            print(f"{self.record['parallel']} trials at once share this machine's {available_cores()} cores: each "
                  f"trains with {self.threads} torch thread{'s' if self.threads > 1 else ''} (set OMP_NUM_THREADS "
                  f"to choose)", flush=True)
        self.record["status"] = "RUNNING"
        self.stop_file.unlink(missing_ok=True)
        self.queue = [number for number, trial in sorted(self.trials.items()) if self.to_run(trial)]
        try:
            while True:
                for job in [job for job in self.running if job.done()]:
                    self.finish(job)
                more = self.submit_more()
                self.show_progress()
                if not (more or self.running):
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            return self.cancel()
        self.record["status"] = "COMPLETED"
        self.save()
        return self.report()

    def to_run(self, trial: TrialRecord) -> bool:
        finished = ("COMPLETED", "PRUNED", "FAILED") if self.study is not None else ("COMPLETED",)
        return trial["status"] not in finished  # Optuna was told of a failure already; it cannot be told again

    def submit_more(self) -> bool:
        """Submit trials while fewer than --parallel run; False when none is left to submit."""
        limit = self.record["parallel"] or (1 if self.local else self.record["budget"])
        while len(self.running) < limit:
            number = self.next_trial()
            if number is None:
                return False
            trial = self.trials[number]
            job = self.submit(Trial(self.record["_id"], number, self.record["script"],
                                    [*self.fixed, *as_updates(trial["params"]), *self.given],
                                    trial["params"], self.record["cwd"],
                                    str(self.stop_file), self.pruning_link(number), self.threads))
            self.running[job] = number
            trial["status"] = "RUNNING"
            self.save()
        return True

    def next_trial(self) -> int | None:
        if self.queue:
            return self.queue.pop(0)
        if self.study is not None and len(self.study.trials) < self.record["budget"]:
            asked = self.study.ask()
            trial = new_trial(asked.number, {p.key: p.suggest(asked) for p in self.parameters})
            self.trials[asked.number] = trial
            self.record["trials"].append(trial)
            return asked.number
        return None

    def submit(self, trial: Trial) -> Any:
        if self.local and self.gpus:  # one GPU per trial: the one running the fewest trials now
            in_use = [job.gpu for job in self.running]
            gpu = min(self.gpus, key=in_use.count)
            self.executor.update_parameters(visible_gpus=[gpu], gpus_per_node=1)
        # Local jobs inherit an ignored SIGINT: Ctrl-C then reaches the experiments, which store their checkpoints,
        # and not submitit's job controllers, which would kill them a second later.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if self.local else None
        try:
            job: Any = self.executor.submit(trial)  # it carries the GPU it was given too (.gpu)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        job.gpu = gpu if self.local and self.gpus else None
        return job

    def finish(self, job: Any) -> None:
        number = self.running.pop(job)
        trial = self.trials[number]
        try:
            outcome: TrialOutcome = job.results()[0]  # a trial of several tasks (DDP): task 0's rank records the run
        except Exception as error:  # noqa: BLE001 - the job itself failed (killed, cancelled, node lost)
            outcome = TrialOutcome("FAILED", "\n".join(str(error).strip().splitlines()[-5:]))
        slurm_reason = SLURM_REASONS.get(job.state.split()[0]) if not self.local else None
        if slurm_reason and outcome.status != "COMPLETED":  # what SLURM did is the reason, not what it left behind
            outcome = dataclasses.replace(outcome, error=slurm_reason)
        trial["status"], trial["run"], trial["result"] = outcome.status, outcome.run, outcome.result
        if outcome.status == "COMPLETED" and outcome.pruned_at_step is not None:
            trial["status"], trial["pruned_at_step"] = "PRUNED", outcome.pruned_at_step
        if self.record["direction"] is None and outcome.higher_is_better is not None:
            # Without --direction, the experiment's own, as its first run recorded it.
            self.record["direction"] = "maximize" if outcome.higher_is_better else "minimize"
        if outcome.run is not None and outcome.run not in trial["runs"]:
            trial["runs"].append(outcome.run)
        if self.cancelling and outcome.status != "COMPLETED":
            trial["status"] = "INTERRUPTED"  # stopped by Ctrl-C, however far it got: --continue runs it
        elif outcome.status not in ("COMPLETED", "PRUNED", "INTERRUPTED"):
            trial["status"] = "FAILED"
            run = f"run {outcome.run}" if outcome.run is not None else f"job {job.job_id}, log {job.paths.stderr}"
            indented = "\n".join("    " + line for line in outcome.error.splitlines())
            print(f"trial {number} failed ({run}):\n{indented}", flush=True)
        if self.study is not None:
            self.tell(number, trial)
        self.save()

    # ---- Optuna ----------------------------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        prune = self.record.get("prune")
        # Without --direction the study maximizes until the first run says otherwise; tell() then negates results,
        # and the trials negate the scores they report to the pruner (ingredients.pruning).
        return optuna.create_study(
            study_name=sweep_tag(self.record["_id"]), storage=open_journal(self.journal), load_if_exists=True,
            direction=self.record["direction"] or "maximize", pruner=make_pruner(prune) if prune else None,
            sampler=optuna.samplers.TPESampler(seed=self.record.get("sampler_seed")),
        )

    @property
    def journal(self) -> Path:
        return self.folder / "optuna.journal"

    def pruning_link(self, number: int) -> dict[str, Any] | None:
        """What a trial needs to report to the study's pruner (ingredients.pruning), or None without --prune."""
        if not self.record.get("prune"):
            return None
        return {"journal": str(self.journal), "study": sweep_tag(self.record["_id"]), "trial": number,
                "pruner": self.record["prune"]}

    def tell(self, number: int, trial: TrialRecord) -> None:
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        assert self.study is not None  # an Optuna sweep's
        if trial["status"] == "PRUNED":
            self.study.tell(number, state=TrialState.PRUNED)
        elif trial["status"] == "COMPLETED" and isinstance(trial["result"], (int, float)):
            agrees = (self.study.direction == StudyDirection.MAXIMIZE) == (self.direction() == "maximize")
            self.study.tell(number, trial["result"] if agrees else -trial["result"])
        elif trial["status"] != "INTERRUPTED":  # an interrupted trial is continued by --continue
            self.study.tell(number, state=TrialState.FAIL)

    # ---- what the user sees ----------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        statuses = [trial["status"] for trial in self.trials.values()]
        return {status: statuses.count(status)
                for status in ("COMPLETED", "PRUNED", "RUNNING", "FAILED", "INTERRUPTED")}

    def direction(self) -> Literal["maximize", "minimize"]:
        """--direction, else the experiment's own once a run has recorded it; maximize while none has."""
        return self.record["direction"] or "maximize"

    def best(self) -> TrialRecord | None:
        done = [t for t in self.trials.values() if t["status"] == "COMPLETED" and isinstance(t["result"], (int, float))]
        pick = max if self.direction() == "maximize" else min
        return pick(done, key=lambda trial: trial["result"]) if done else None

    def show_progress(self) -> None:
        counts, best = self.counts(), self.best()
        line = (f"sweep {self.record['_id']}: {counts['COMPLETED'] + counts['PRUNED']}/{self.record['budget']} done, "
                f"{counts['RUNNING']} running, {counts['FAILED']} failed"
                + (f", {counts['PRUNED']} pruned" if counts["PRUNED"] else "")
                + (f"; best {best['result']:.4g} (trial {best['number']}, run {best['run']})" if best else ""))
        if line != self.shown:
            print(line, flush=True)
            self.shown = line

    def report(self) -> int:
        """The trials as a table, best result first; the exit status is the number of failed trials."""
        sign = -1 if self.direction() == "maximize" else 1
        ranked = sorted(self.trials.values(), key=lambda t: (
            (0, sign * t["result"]) if isinstance(t["result"], (int, float)) else (1, t["number"])))
        keys = [parameter.key for parameter in self.parameters] + (["seed"] if self.record.get("seeds") else [])
        rows = [["trial", "run", "status", "result", *keys]] + [
            [str(t["number"]), str(t["run"]),
             f"PRUNED at step {t['pruned_at_step']}" if t["status"] == "PRUNED" else t["status"],
             f"{t['result']:.4f}" if isinstance(t["result"], (int, float)) else "-",
             *(format_value(t["params"].get(key)) for key in keys)] for t in ranked]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        counts = self.counts()
        failed = counts["FAILED"] + counts["INTERRUPTED"]
        pruned = f" ({counts['PRUNED']} pruned)" if counts["PRUNED"] else ""
        print(f"sweep {self.record['_id']}: {counts['COMPLETED'] + counts['PRUNED']} of {len(self.trials)} trials "
              f"completed{pruned}, {failed} failed; continue with `{self.continue_command()}`" if failed else
              f"sweep {self.record['_id']}: all {len(self.trials)} trials completed{pruned}")
        return min(failed, 125)

    def continue_command(self) -> str:
        return shell_command("tracker", "sweep", "--continue", self.record["_id"])

    def cancel(self) -> int:
        """Ctrl-C: stop the queued and running trials and say which finished; running ones store checkpoints."""
        print(f"\nsweep {self.record['_id']}: cancelling {len(self.running)} running trial(s)", flush=True)
        self.cancelling = True
        self.stop_file.touch()
        if not self.local:
            for job in self.running:
                job.cancel(check=False)  # scancel: SLURM sends SIGTERM, the experiments store their checkpoints
        elif os.getpgrp() == os.getpid():
            # Leading its process group (a terminal's foreground job): Ctrl-C as the terminal sends it, to every
            # experiment, also when only this process got it; the trials' job processes ignore it.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.killpg(0, signal.SIGINT)
            signal.signal(signal.SIGINT, previous)
        else:
            for job in self.running:  # the job's controller passes SIGTERM to the trial, and it to the experiment
                os.kill(int(job.job_id), signal.SIGTERM)
        deadline = time.monotonic() + (CANCEL_WAIT_S if self.local else 0)
        while self.running and time.monotonic() < deadline:
            for job in [job for job in self.running if job.done()]:
                self.finish(job)
            time.sleep(POLL_S / 4)
        for number in self.running.values():
            self.trials[number]["status"] = "INTERRUPTED"
        self.record["status"] = "INTERRUPTED"
        self.save()
        finished = sorted(n for n, t in self.trials.items() if t["status"] in ("COMPLETED", "PRUNED"))
        unfinished = sorted(n for n, t in self.trials.items() if t["status"] not in ("COMPLETED", "PRUNED"))
        never_asked = self.record["budget"] - len(self.trials)  # Optuna's trials are chosen when they start
        print(f"sweep {self.record['_id']}: trials finished: {', '.join(map(str, finished)) or 'none'}; "
              f"not finished: {', '.join(map(str, unfinished)) or 'none'}"
              + (f"; {never_asked} more to choose" if never_asked else "")
              + f"; continue with `{self.continue_command()}`", flush=True)
        return 130

    def save(self) -> None:
        """Write the record to its folder and, when MongoDB answers, to the `sweeps` collection."""
        path = self.folder / RECORD_FILE
        write_atomically(path, json.dumps(self.record, indent=1, default=str))
        if self.db is not None:
            try:
                self.db.sweeps.replace_one({"_id": self.record["_id"]}, self.record)
            except PyMongoError as error:
                print(f"WARNING: the sweep's record could not be stored in MongoDB ({error}); it is kept in {path}",
                      file=sys.stderr)
                self.db = None


def format_value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
