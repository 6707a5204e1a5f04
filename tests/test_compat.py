"""Each patch of compat/ gives what its module says (a test named after each), and a patch whose target is missing
is refused in one line naming the package and its version."""
import argparse
import datetime
import inspect
import json
import math
import queue
import re
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import bson
import nx_27017.wire_protocol
import optuna
import pymongo
import pytest
import submitit
import torch
from neosqlite import Connection, GridFS
from neosqlite.collection.expr_evaluator.python_evaluators.math_ops import MathPythonMixin
from neosqlite.collection.query_helper._sql_query_builder import SqlQueryBuilderMixin
from neosqlite.objectid import ObjectId as NeoObjectId
from nx_27017.wire_protocol import ResponseBuilder
from sacred import Experiment, Ingredient
from sacred.commandline_options import cli_option
from sacred.dependencies import Source
from sacred.observers import MongoObserver, RunObserver
from sacred.run import Run
from sacred.stdout_capturing import CapturedStdout
from sacred.utils import ConfigAddedError

import compat.argparse
import compat.neosqlite
import compat.nx27017
import compat.optuna
import compat.pymongo
import compat.sacred
import compat.submitit
import compat.torch
from compat import CompatError, Package
from conftest import REPO_ROOT, LocalMongoServer, git, python_env
from runstore.settings import STORE_SOCKET, store_url

PACKAGES = [compat.sacred.SACRED, compat.pymongo.PYMONGO, compat.argparse.PYTHON, compat.submitit.SUBMITIT,
            compat.optuna.OPTUNA, compat.nx27017.NX_27017, compat.neosqlite.NEOSQLITE,
            compat.torch.TORCH]
OPTIONS = {"--capture": "no", "--loglevel": "ERROR"}


@pytest.fixture
def restored(monkeypatch):
    """restored(owner, name, ...): each attribute is given back after the test, whatever a patch makes of it."""
    def restore(owner, *names):
        for name in names:
            monkeypatch.setattr(owner, name, getattr(owner, name))

    return restore


def test_the_installed_packages_are_those_the_patches_were_written_for():
    # An upgrade fails here first: review that package's compat module, then update its version.
    assert [(package.name, package.version) for package in PACKAGES if not package.is_written_for()] == []


def test_a_patch_whose_target_is_missing_is_refused_in_one_line(capsys):
    package = Package("sacred", ("0.8.7",), "compat/sacred.py")
    with pytest.raises(CompatError) as refused:
        package.target(Run, "_no_such_method")
    message = str(refused.value)
    assert "\n" not in message
    assert f"sacred {package.version} has no Run._no_such_method" in message and "compat/sacred.py" in message
    assert package.target(Run, "_no_such_method", optional=True) is None
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "running without that patch" in warning


def test_sacred_lock_captured_output(restored, tmp_path):
    restored(Run, "_get_captured_output")
    restored(CapturedStdout, "get", "finalize")
    compat.sacred.lock_captured_output()
    compat.sacred.lock_captured_output()  # a second call adds no second lock
    assert Run._get_captured_output.__wrapped__.__name__ == "_get_captured_output"
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, so unlocked reads overlap
    try:
        for attempt in range(3):
            # As in a run: the heartbeat thread and the main thread read the captured output while it grows.
            path = tmp_path / f"output-{attempt}.txt"
            lines = [f"line {number}\n" for number in range(20_000)]
            with open(path, "w") as writer, open(path) as reader:
                run = types.SimpleNamespace(_output_file=CapturedStdout(reader), captured_out="",
                                            captured_out_filter=None)
                written = threading.Event()
                # B023: the threads end within this iteration.
                readers = [threading.Thread(target=lambda: [Run._get_captured_output(run)  # noqa: B023
                                                            for _ in iter(written.is_set, True)])  # noqa: B023
                           for _ in range(2)]
                for thread in readers:
                    thread.start()
                for line in lines:
                    writer.write(line)
                    writer.flush()
                written.set()
                for thread in readers:
                    thread.join()
                Run._get_captured_output(run)
            assert run.captured_out == "".join(lines)
    finally:
        sys.setswitchinterval(interval)


def test_sacred_look_up_git_once_per_repository(restored, tmp_path):
    repository = tmp_path / "repository"
    (repository / "package").mkdir(parents=True)
    files = [repository / "main.py", repository / "package" / "a.py", repository / "package" / "b.py"]
    for path in files:
        path.write_text("x = 1\n")
    git("init", "-q", cwd=repository)
    git("add", ".", cwd=repository)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files", cwd=repository)
    files[0].write_text("x = 2\n")  # dirty
    restored(compat.sacred.sacred.dependencies, "get_commit_if_possible")
    own = compat.sacred.sacred.dependencies.get_commit_if_possible
    asked = []
    compat.sacred.sacred.dependencies.get_commit_if_possible = lambda *args: asked.append(args) or own(*args)
    expected = [own(str(path), True) for path in files]
    assert expected[0][1] and expected[0][2] is True  # a commit, dirty

    compat.sacred.look_up_git_once_per_repository()
    sources = [Source.create(str(path), True) for path in files]
    compat.sacred.look_up_git_per_file()
    assert [(source.repo, source.commit, source.is_dirty) for source in sources] == expected
    assert len(asked) == 1
    Source.create(str(files[1]), True)  # Sacred's own lookup again
    assert len(asked) == 2


class SlowLastHeartbeat(RunObserver):
    """Records the order of a run's last heartbeat and its end; the last heartbeat takes longer than the 2 s that
    Sacred waits for it."""

    def __init__(self):
        self.events = []

    def heartbeat_event(self, info, captured_out, beat_time, result):
        if result is not None:  # the last heartbeat, after the main function returned
            time.sleep(2.5)
            self.events.append("last heartbeat")

    def completed_event(self, stop_time, result):
        compat.sacred.wait_for_last_heartbeat(30)
        self.events.append("completed")


def one():
    return 1


def test_sacred_wait_for_last_heartbeat():
    ex = Experiment("heartbeat", save_git_info=False)
    ex.main(one)
    observer = SlowLastHeartbeat()
    ex.observers.append(observer)
    ex.run(options=OPTIONS)
    assert observer.events == ["last heartbeat", "completed"]


def test_sacred_convert_value_reads_values_as_with_does():
    assert [compat.sacred.convert_value(text) for text in ("0.1", "adam", "[1, 'a']", "True", "1e-3")] == [
        0.1, "adam", [1, "a"], True, 0.001]


def test_sacred_unknown_config_key():
    data = Ingredient("data", save_git_info=False)
    data.add_config(batch_size=1)
    ex = Experiment("unknown", ingredients=[data], save_git_info=False)
    ex.main(one)
    with pytest.raises(ConfigAddedError) as added:
        ex.run(config_updates={"data": {"batch_sizee": 2}}, options=OPTIONS)
    assert compat.sacred.unknown_config_key(added.value) == ("data.batch_sizee", {"batch_size": 1, "batch_sizee": 2})


def test_sacred_invalid_config_key():
    ex = Experiment("invalid", save_git_info=False)
    with pytest.raises(KeyError) as refused:
        ex.add_config({"a.b": 1})
    assert compat.sacred.invalid_config_key(refused.value) == "a.b"
    assert compat.sacred.invalid_config_key(KeyError("a.b")) is None


class Recorder(RunObserver):
    """Gives each run the id 7 and records the observed events."""

    def __init__(self):
        self.events = []

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        return 7

    def completed_event(self, stop_time, result):
        self.events.append(("completed", result))


def test_sacred_run_id():
    ex = Experiment("identified", save_git_info=False)
    ex.observers.append(Recorder())
    ex.main(lambda _run: compat.sacred.run_id(_run))
    assert ex.run(options=OPTIONS).result == 7


def test_sacred_add_command_line_options():
    given = []

    @cli_option("-W", "--width")
    def width_option(value, run):
        """The width VALUE."""
        given.append(value)

    ex = Experiment("options", save_git_info=False)
    ex.main(one)
    compat.sacred.add_command_line_options(ex, [width_option])
    ex.run_commandline(["options.py", "--width=3", "--loglevel=ERROR"])
    assert given == ["3"]


def test_sacred_add_last_config_hook():
    order = []
    ex = Experiment("hooks", save_git_info=False)
    ex.add_config(width=1)

    def last(config, command_name, logger):
        order.append("last")
        return {}

    @ex.option_hook
    def add_last(options):
        compat.sacred.add_last_config_hook(ex, last)

    @ex.config_hook
    def wider(config, command_name, logger):
        order.append("wider")
        return {}

    ex.main(one)
    ex.run_commandline(["hooks.py", "--loglevel=ERROR"])
    ex.run_commandline(["hooks.py", "--loglevel=ERROR"])  # added once
    assert order == ["wider", "last"] * 2


def test_sacred_wrap_run_and_wrap_run_commandline(monkeypatch):
    calls = []
    ex = Experiment("wrapped", save_git_info=False)
    ex.observers.append(Recorder())

    def wrapper(name):
        def wrap(method):
            def wrapped(*args, **kwargs):
                calls.append(name)
                return method(*args, **kwargs)
            return wrapped
        return wrap

    compat.sacred.wrap_run(ex, wrapper("run"))
    compat.sacred.wrap_run_commandline(ex, wrapper("run_commandline"))
    monkeypatch.setattr(sys, "argv", ["wrapped.py", "--loglevel=ERROR"])
    main = lambda: 1  # noqa: E731 (a function of the module "__main__", as a script's is)
    main.__module__ = "__main__"
    ex.automain(main)
    assert calls == ["run_commandline", "run"]
    assert ex.observers[0].events == [("completed", 1)]


def test_sacred_add_documented_config(capsys):
    ex = Experiment("documented", save_git_info=False)
    compat.sacred.add_documented_config(ex, "lr", 0.1, "learning rate")
    ex.main(lambda lr: lr)
    assert ex.run(options=OPTIONS).result == 0.1
    ex.run("print_config", config_updates={"lr": 0.5}, options=OPTIONS)
    assert re.search(r"lr = 0.5 +\S+# learning rate", capsys.readouterr().out)


def test_sacred_at_main_end():
    events = []
    ex = Experiment("ending", save_git_info=False)
    ex.observers.append(Recorder())

    @ex.pre_run_hook
    def finish_at_main_end(_run):
        compat.sacred.at_main_end(_run, lambda: events.append("finished"))

    def fail():
        events.append("main")
        raise ValueError("main failed")

    ex.main(fail)
    with pytest.raises(ValueError):
        ex.run(options=OPTIONS)
    assert events == ["main", "finished"]


class InfoRecorder(RunObserver):
    def __init__(self):
        self.beats = []

    def heartbeat_event(self, info, captured_out, beat_time, result):
        self.beats.append(dict(info))


def test_sacred_store_info_now():
    ex = Experiment("info", save_git_info=False)
    observer = InfoRecorder()
    ex.observers.append(observer)

    @ex.pre_run_hook
    def set_origin(_run):
        _run.info["origin"] = 3
        compat.sacred.store_info_now(_run)

    ex.main(lambda: observer.beats[0])  # the run's result: the first heartbeat, sent before the main function
    assert ex.run(options=OPTIONS).result == {"origin": 3}


def test_sacred_mongo_priority():
    assert inspect.signature(MongoObserver).parameters["priority"].default == compat.sacred.MONGO_PRIORITY


class RecordedWrites(compat.sacred.FileStorage):
    sources_folder = "sources"

    def __init__(self, basedir, refuse_sources=False):
        super().__init__(basedir)
        self.written, self.refuse_sources = [], refuse_sources

    def write_file(self, name, write, *args):
        self.written.append(name)
        return None if self.refuse_sources and name == Path(__file__).name else super().write_file(name, write, *args)


@pytest.mark.parametrize("refuse_sources", [False, True])
def test_sacred_file_storage(tmp_path, refuse_sources):
    ex = Experiment("stored", base_dir=str(REPO_ROOT))
    observer = RecordedWrites(tmp_path / "runs", refuse_sources)
    ex.observers.append(observer)
    ex.main(one)
    ex.run(options=OPTIONS)
    assert {"run.json", "config.json", "cout.txt", "report", Path(__file__).name} <= set(observer.written)
    run = json.loads((Path(observer.dir) / "run.json").read_text())
    stored = Path(observer.basedir, dict(run["experiment"]["sources"])["tests/test_compat.py"]).resolve()
    assert stored == Path(__file__) if refuse_sources else stored.parent == Path(observer.dir).resolve() / "sources"
    assert not (tmp_path / "runs" / "_sources").exists()


EXIT_AFTER_CLOSE = """
import atexit, sys, threading
# Registered before pymongo's exit handler, so it runs after it: which of the client's threads are still alive.
atexit.register(lambda: print(sorted(t.name for t in threading.enumerate() if t.name.startswith("pymongo"))))
import pymongo
client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)
client.admin.command("ping")
client.close()
if sys.argv[2] == "skip":
    from compat.pymongo import skip_exit_wait
    skip_exit_wait()
"""


def threads_alive_at_exit(url, how):
    """The names of the pymongo threads still alive once pymongo's exit handler had its turn."""
    done = subprocess.run([sys.executable, "-c", EXIT_AFTER_CLOSE, url, how], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=python_env(), timeout=60, check=True)
    return done.stdout.strip()


def test_pymongo_skip_exit_wait(mongo_url):
    # pymongo's handler joins the closed client's threads, which look every 0.5 s whether to stop; skipped, the
    # process ends while they still sleep (benchmarks/compat_savings.py times both exits).
    assert threads_alive_at_exit(mongo_url, "wait") == "[]"
    assert "pymongo_server_monitor_thread" in threads_alive_at_exit(mongo_url, "skip")


def test_argparse_values_may_start_with_dash():
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--sort")
    parser.add_argument("--limit", type=int)
    compat.argparse.values_may_start_with_dash(parser)
    assert vars(parser.parse_args(["--sort", "-result", "--limit", "3"])) == {"sort": "-result", "limit": 3}
    with pytest.raises(SystemExit):  # an unknown option is still one
        parser.parse_args(["--sortt", "x"])


def test_submitit_generic_parameters(tmp_path):
    generic = compat.submitit.generic_parameters()
    assert {"timeout_min", "mem_gb", "gpus_per_node", "cpus_per_task"} <= generic and "partition" not in generic
    executor = submitit.AutoExecutor(tmp_path, cluster="slurm")
    given = {"timeout_min": 10, "mem_gb": 4, "partition": "gpu"}
    executor.update_parameters(**{key if key in generic else f"slurm_{key}": value for key, value in given.items()})
    assert {key: executor.parameters.get(key) for key in ("time", "mem", "partition")} == {
        "time": 10, "mem": "4GB", "partition": "gpu"}  # translated for SLURM
    with pytest.raises(AssertionError):  # and type-checked
        executor.update_parameters(timeout_min="ten")


def test_optuna_existing_trial():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="sweep", storage=storage)
    asked = study.ask()
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("sweep"), asked.number)
    trial = compat.optuna.existing_trial(study, trial_id)
    trial.report(0.5, step=1)
    assert trial.number == asked.number
    assert study.trials[0].intermediate_values == {1: 0.5}
    assert trial.should_prune() is False


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 5e-4), (0.0, 5e-4), (0.85, 0.0)])
def test_torch_sgd_step(momentum, weight_decay):
    torch.manual_seed(0)
    ours = [torch.randn(3, 2), torch.randn(4)]
    theirs = [torch.nn.Parameter(p.clone()) for p in ours]
    optimizer = torch.optim.SGD(theirs, lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    buffers = None
    for step in range(3):
        grads = [torch.randn_like(p) for p in ours]
        for parameter, grad in zip(theirs, grads):
            parameter.grad = grad.clone()
        optimizer.param_groups[0]["lr"] = 0.1 / (step + 1)
        optimizer.step()
        buffers = compat.torch.sgd_step(ours, grads, buffers, 0.1 / (step + 1), momentum, weight_decay)
    assert all(torch.equal(mine, reference) for mine, reference in zip(ours, theirs))
    assert (buffers is None) == (momentum == 0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """`tracker db`'s server (with every patch of compat.nx27017 and compat.neosqlite) and a client of it."""
    server = LocalMongoServer(tmp_path_factory.mktemp("compat-store")).start()
    client = pymongo.MongoClient(server.url)
    yield client["compat"]
    client.close()
    server.stop()


def test_nx27017_accept_old_drivers(store):
    assert store.client.admin.command("hello")["minWireVersion"] == 0


def test_nx27017_serve_with_handler(store):
    store.losses.insert_one({"_id": 1, "loss": math.nan})  # only this project's handler stores a NaN
    assert math.isnan(store.losses.find_one({"_id": 1})["loss"])


def test_nx27017_encode_replies_with(restored):
    from localdb.nx_adapter import _cursor_id_as_int64, _encode_reply

    # A listing of runs as neosqlite answers it, with its ObjectIds (benchmarks/store_reply_encoding.py times both).
    runs = [{"_id": NeoObjectId(), "config": {"lr": 0.1, "seed": seed}, "status": "COMPLETED", "result": 0.5}
            for seed in range(100)]
    listing = {"ok": 1, "cursor": {"id": 0, "ns": "db.runs", "firstBatch": runs}}
    own = ResponseBuilder.build_op_msg_reply(1, 1, listing)
    restored(nx_27017.wire_protocol, "encode", "_convert_objectids")
    encoded = []
    compat.nx27017.encode_replies_with(lambda document: encoded.append(document) or _encode_reply(document),
                                       _cursor_id_as_int64)
    patched = ResponseBuilder.build_op_msg_reply(1, 1, listing)
    assert patched == own  # the same bytes: bson ObjectIds, an Int64 cursor id
    assert encoded[0]["cursor"]["firstBatch"] is runs  # encoded as neosqlite answered it, not a converted copy


def test_nx27017_serve_forever_with_handle_client_and_run_server(tmp_path):
    # The owner-only Unix socket in the data folder, announced once it listens, with nx-27017's log in that folder.
    data_dir = tmp_path / "store"
    process = subprocess.Popen([sys.executable, "-m", "localdb.server", "--data-dir", str(data_dir), "--quiet"],
                               cwd=REPO_ROOT, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        ready = lines.get(timeout=60)
        # The socket by its path, not its URL-encoded URL (runstore.settings.shown_url), as the stop line names it.
        assert ready == (f"Serving the run store in {data_dir.resolve()}/ at {data_dir.resolve() / STORE_SOCKET} "
                         f"(only you can connect; Ctrl-C to stop)\n"), ready
        with pymongo.MongoClient(store_url(data_dir), serverSelectionTimeoutMS=5000) as client:
            assert client.admin.command("ping")["ok"] == 1
        assert (data_dir / STORE_SOCKET).stat().st_mode & 0o777 == 0o600
        assert (data_dir / "server.log").is_file()
    finally:
        process.terminate()
        process.wait(10)


def test_nx27017_handler_gives_its_private_methods_public_names(tmp_path):
    from localdb.nx_adapter import MMAP_BYTES, TrackerHandler

    handler = TrackerHandler(str(tmp_path), data_dir=str(tmp_path))
    connection = handler.get_database("compat")
    assert connection.db.execute("PRAGMA mmap_size").fetchone()[0] == MMAP_BYTES  # opened() ran
    with handler.lock_for("compat"):
        pass
    assert handler.is_gridfs_collection("fs.files") and not handler.is_gridfs_collection("runs")
    assert handler.first_batch_size({"find": "runs", "batchSize": 2}) == 2
    first, cursor_id = handler.split_first_batch([{"_id": n} for n in range(5)], 2, "compat.runs", "compat")
    assert first == [{"_id": 0}, {"_id": 1}] and cursor_id != 0
    handler.close_all()


def test_nx27017_gridfs_adapter():
    connection = Connection(":memory:")
    GridFS(connection).put(b"abc", filename="a.txt")
    [stored] = compat.nx27017.gridfs_adapter(connection.db, "fs.files").handle_find({})
    assert (stored["filename"], stored["length"]) == ("a.txt", 3)
    connection.close()


@pytest.fixture
def collection():
    connection = Connection(":memory:")
    runs = connection["runs"]
    start = datetime.datetime(2026, 1, 1)
    runs.insert_many([{"_id": n, "start": start, "stop": start + datetime.timedelta(seconds=n)} for n in (1, 2, 3)])
    yield runs
    connection.close()


def test_neosqlite_subtract_dates_as_mongodb(collection, restored):
    restored(MathPythonMixin, "_evaluate_arithmetic_python")
    compat.neosqlite.subtract_dates_as_mongodb()
    compat.neosqlite.subtract_dates_as_mongodb()  # a second call changes nothing
    stages = [{"$project": {"ms": {"$subtract": ["$stop", "$start"]},
                            "earlier": {"$subtract": ["$stop", 500]}}}]
    answered = compat.neosqlite.aggregate_in_python(collection, list(collection.find()), stages)
    assert [doc["ms"] for doc in answered] == [1000, 2000, 3000]
    assert answered[0]["earlier"] == datetime.datetime(2026, 1, 1, 0, 0, 0, 500_000)


def test_neosqlite_sort_ids_as_mongodb(collection, restored):
    restored(SqlQueryBuilderMixin, "_build_sort_clause")
    collection.insert_many([{"_id": 10}, {"_id": 2.5}, {"_id": "a"}])
    assert [doc["_id"] for doc in collection.find().sort("_id", -1)] == ["a", 3, 2.5, 2, 10, 1]  # as text
    object_id = collection.insert_one({}).inserted_id
    compat.neosqlite.sort_ids_as_mongodb()
    compat.neosqlite.sort_ids_as_mongodb()  # a second call changes nothing
    assert [doc["_id"] for doc in collection.find().sort("_id", 1)] == [1, 2, 2.5, 3, 10, "a", object_id]
    assert [doc["_id"] for doc in collection.find().sort("_id", -1).limit(3)] == [object_id, "a", 10]
    by_stop = collection.find().sort([("stop", 1), ("_id", -1)]).limit(5)  # no stop first, then by stop
    assert [doc["_id"] for doc in by_stop] == [object_id, "a", 10, 2.5, 1]


def test_neosqlite_aggregate_in_python(collection):
    grouped = [{"$group": {"_id": "$_id"}}, {"$sort": {"_id": 1}}]
    assert list(collection.aggregate(grouped)) == [{"_id": "1"}, {"_id": "2"}, {"_id": "3"}]  # neosqlite's SQL
    assert compat.neosqlite.aggregate_in_python(collection, list(collection.find()), grouped) == [
        {"_id": 1}, {"_id": 2}, {"_id": 3}]
    given = [{"_id": 9}]  # runs over the documents it is given, not the collection's
    assert compat.neosqlite.aggregate_in_python(collection, given, grouped) == [{"_id": 9}]


def test_neosqlite_stored_ids(collection):
    object_id = collection.insert_one({"name": "no _id given"}).inserted_id  # neosqlite's ObjectId, in its column
    stored_id_of = compat.neosqlite.stored_ids(collection)
    row_id, stored = collection.db.execute(f'SELECT id, _id FROM "{collection.name}" ORDER BY id DESC').fetchone()
    assert stored_id_of(stored, row_id) == object_id
    assert stored_id_of(None, row_id) == row_id  # a row from before the _id column


def test_neosqlite_json_loads():
    text = '{"start": {"$date": "2026-01-01T00:00:00Z"}, "loss": 0.5}'
    assert compat.neosqlite.json_loads(text) == {
        "start": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), "loss": 0.5}


def test_neosqlite_quote_table_name(collection):
    table = compat.neosqlite.quote_table_name(collection.name)
    assert collection.db.execute(f"SELECT count(*) FROM {table}").fetchone() == (3,)


def test_neosqlite_object_id(collection):
    given = collection.insert_one({"name": "no _id given"}).inserted_id
    assert isinstance(given, compat.neosqlite.ObjectId) and not isinstance(given, bson.ObjectId)
