"""tracker/board_columns.py: which config keys and scores Omniboard's first screen shows."""
from tracker.board_columns import differing_config_keys, score_column, score_metrics


def test_config_columns_are_the_keys_that_differ_in_config_order():
    runs = [{"config": {"seed": 1, "lr": 0.1, "model": {"arch": "resnet", "widths": [8, 16]}, "trainer": {"steps": 10}}},
            {"config": {"seed": 2, "lr": 0.2, "model": {"arch": "resnet", "widths": [8, 32]}, "trainer": {"steps": 10}}},
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
