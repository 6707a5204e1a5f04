"""`tracker sweep --optuna N --prune median`: trials whose validation scores are hopeless stop early."""
import json
import re

from conftest import EXPERIMENT, metric, run_tracker
from test_sweep import sweep_id_of, sweep_runs

# 4 trials of 30 steps, validated every 10. With sampler seed 1, Optuna's first draws of lr are 0.02, 0.05, 1e-6 and
# 1e-6: the three first run to the end (the median pruner's startup trials, whose median is a run that learns), and
# the fourth, which learns nothing, falls below that median at a validation before its last step.
PRUNED_SWEEP = ["sweep", "--optuna", "4", "--prune", "median", "--sampler-seed", "1", str(EXPERIMENT), "with",
                "smoke", "trainer.steps=30", "trainer.val_every=10", "data.limit=1000", "trainer.progress=False",
                "lr=choice(0.05,0.02,1e-6)"]


def check_pruned_sweep(result, db):
    """The sweep's table, runs and record show the pruned trial as such; returns the sweep's id."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sweep_id = sweep_id_of(output)
    assert re.search(r"^3\s+\S+\s+PRUNED at step (10|20)\s", output, re.M), output
    assert f"sweep {sweep_id}: all 4 trials completed (1 pruned)" in output
    runs = sweep_runs(db, sweep_id)
    pruned = runs[3]
    step = pruned["info"]["pruned_at_step"]
    assert pruned["status"] == "COMPLETED" and step in (10, 20)  # a validation before the last step
    assert pruned["omniboard"]["tags"] == [f"sweep-{sweep_id}", "pruned"]
    assert max(metric(db, pruned["_id"], "train.loss")) == step  # it kept what it logged, and stopped there
    assert [max(metric(db, run["_id"], "train.loss")) for run in runs[:3]] == [30, 30, 30]
    record = db.sweeps.find_one({"_id": sweep_id})
    assert [trial["status"] for trial in record["trials"]] == ["COMPLETED"] * 3 + ["PRUNED"]
    return sweep_id


def test_a_pruned_sweep_stops_a_hopeless_trial_and_continue_leaves_it(mongo_url, mongo_db, db_name, workdir):
    import optuna
    from ingredients.pruning import open_journal

    sweep_id = check_pruned_sweep(run_tracker(PRUNED_SWEEP, workdir, mongo_url, db_name, timeout=900), mongo_db)

    listed = run_tracker(["runs", "--tag", f"sweep-{sweep_id}", "--format", "json"], workdir, mongo_url, db_name)
    assert sorted(row["status"] for row in json.loads(listed.stdout)) == ["COMPLETED"] * 3 + ["PRUNED"]
    folder = mongo_db.sweeps.find_one({"_id": sweep_id})["folder"]
    study = optuna.load_study(study_name=f"sweep-{sweep_id}", storage=open_journal(f"{folder}/optuna.journal"))
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 3 + ["PRUNED"]

    again = run_tracker(["sweep", "--continue", str(sweep_id)], workdir, mongo_url, db_name)
    assert again.returncode == 0 and "all 4 trials completed (1 pruned)" in again.stdout, again.stdout + again.stderr
    assert len(sweep_runs(mongo_db, sweep_id)) == 4  # the pruned trial is finished, not failed: it is not run again


def test_prune_needs_an_optuna_search(mongo_url, db_name, workdir):
    result = run_tracker(["sweep", "--prune", "median", str(EXPERIMENT), "with", "smoke", "lr=[0.01,0.1]"],
                         workdir, mongo_url, db_name)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --prune median needs an Optuna search, which reports to the pruner; add --optuna N"]


def test_an_experiment_without_the_trainer_is_pruned_through_report_score(mongo_url, mongo_db, db_name, workdir):
    # Sampler seed 1 draws slopes 2, 3, 1, 1, 2: trial 3 (slope 1) is below the median of trials 0-2 at step 1.
    script = EXPERIMENT.parent.parent / "tests" / "pruned_experiment.py"
    result = run_tracker(["sweep", "--optuna", "5", "--prune", "median", "--sampler-seed", "1", str(script),
                          "with", "slope=choice(3.0,2.0,1.0)"], workdir, mongo_url, db_name, timeout=600)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    runs = sweep_runs(mongo_db, sweep_id_of(output))
    assert [run["info"].get("pruned_at_step") for run in runs] == [None, None, None, 1, None]
    assert metric(mongo_db, runs[3]["_id"], "val.score") == {1: 1.0} and runs[3]["result"] == 1.0
