"""tracker/board_columns.py: which config keys and scores Omniboard's first screen shows."""
from tracker.board_columns import (PLOT_KEY, TABLE_KEY, browser_defaults, differing_config_keys, listed_runs,
                                   score_column, score_metrics)


def test_config_columns_are_the_keys_that_differ_in_config_order():
    runs = [{"config": {"seed": 1, "lr": 0.1, "model": {"arch": "resnet", "widths": [8, 16]},
                        "trainer": {"steps": 10}}},
            {"config": {"seed": 2, "lr": 0.2, "model": {"arch": "resnet", "widths": [8, 32]},
                        "trainer": {"steps": 10}}},
            {"config": {"seed": 3, "lr": 0.1, "model": {"arch": "resnet", "widths": [8, 16]}, "extra": {"seed": 4}}},
            {}]
    assert differing_config_keys(runs) == ["lr", "model.widths"]  # seeds, at any depth, say nothing


def test_a_single_run_or_none_has_no_differing_keys():
    assert differing_config_keys([{"config": {"lr": 0.1}}]) == []
    assert differing_config_keys([]) == []


def summary(name, low, high):
    return {"name": name, "min": low, "max": high}


def test_the_score_is_the_validation_metric_whose_extremum_is_the_result():
    runs = [{"result": 0.9, "metric_summaries": [summary("train.acc", 0.1, 0.9), summary("val.acc", 0.2, 0.9),
                                                 summary("val.loss", 0.3, 1.5)]},
            {"result": 0.3, "metric_summaries": [summary("val.acc", 0.3, 0.5), summary("val.loss", 0.3, 2.0)]},
            {"result": True, "metric_summaries": [summary("val.other", 0.0, 1.0)]},  # a bool is no result
            {"result": 0.5, "metric_summaries": [summary("val.flat", 0.5, 0.5)]},  # a constant metric tells nothing
            {"metric_summaries": [summary("val.none", 0.0, 1.0)]}]
    assert score_metrics(runs) == {"val.acc": "max", "val.loss": "min"}
    assert [score_column(metric, extremum) for metric, extremum in score_metrics(runs).items()] == [
        "best_val_acc", "lowest_val_loss"]


def test_the_browser_starts_with_the_results_columns_and_the_other_columns_hidden():
    runs = [{"config": {"lr": 0.1, "trainer": {"steps": 10}}, "result": 0.9, "metric_summaries": [
        summary("val.acc", 0.2, 0.9), summary("train.loss", 0.1, 2.0), summary("time.step_ms", 900, 1600)]}]
    custom = [{"name": "lr", "config_path": "config.lr"}]
    metric = [{"name": "best_val_acc", "metric_name": "val.acc", "extrema": "max"}]
    defaults = browser_defaults(runs, custom, metric)
    table = defaults[TABLE_KEY]
    assert table["columnOrder"] == ["_id", "experiment_name", "status", "start_time", "duration", "lr",
                                    "best_val_acc", "tags"]
    hidden = [option["value"] for option in table["dropdownOptions"] if not option["selected"]]
    assert hidden == ["result", "heartbeat", "stop_time", "hostname", "command", "resources", "format", "notes",
                      "c_lr", "c_trainer"]  # listed, so that the user can show them
    assert {option["label"] for option in table["dropdownOptions"]} >= {"Experiment Name", "Best Val Acc", "C Lr"}
    assert set(table["columnWidths"]) == {option["value"] for option in table["dropdownOptions"]}
    assert table["columnNameMap"]["lr"] == "config.lr" and table["columnNameMap"]["c_trainer"] == "config.trainer"
    plotted = [option["value"] for option in defaults[PLOT_KEY]["metricNameOptions"] if option["selected"]]
    assert plotted == ["train.loss", "val.acc"]  # not time.step_ms, whose scale would flatten them


def test_without_a_score_or_a_loss_the_plot_keeps_omniboards_default():
    runs = [{"metric_summaries": [summary("time.step_ms", 900, 1600)]}]
    assert PLOT_KEY not in browser_defaults(runs, [], [])


class OneCollection:
    """A database of the runs `docs`, as listed_runs reads it."""

    def __init__(self, docs):
        self.runs = self
        self.docs = docs

    def find(self, query, fields):
        return [dict(doc) for doc in self.docs]


def test_runs_stored_with_fields_of_other_types_leave_the_columns_as_the_other_runs_make_them():
    good = [{"config": {"lr": 0.1}, "result": 0.9, "metric_summaries": [summary("val.acc", 0.2, 0.9)]},
            {"config": {"lr": 0.2}, "result": 0.5, "metric_summaries": [summary("val.acc", 0.1, 0.5)]}]
    odd = [{"config": "x", "metric_summaries": 5}, {"config": [1], "metric_summaries": [5]},
           {"result": 0.9, "metric_summaries": [{"name": "val.odd", "max": 0.9}]}]
    runs = listed_runs(OneCollection(good + odd))
    assert differing_config_keys(runs) == ["lr"]
    assert score_metrics(runs) == {"val.acc": "max", "val.odd": "max"}
    assert browser_defaults(runs, [], [])[PLOT_KEY]["metricNameOptions"][0]["value"] == "val.acc"
