"""What `tracker runs` and `tracker compare` print: cells, aligned tables, legends and data warnings."""
import datetime
import io
import json

from runstore.environment import differences
from runstore.shell import shell_command
from tracker.compare import data_warning, legend_label
from tracker.runs import MAX_CELL, cell, render_table, write


def test_cells_show_four_significant_digits_times_to_the_second_and_durations():
    assert [cell(value) for value in (0.123456, 12345.678, 1e-7, 3, True, None)] == [
        "0.1235", "1.235e+04", "1e-07", "3", "True", "-"]
    assert cell(datetime.datetime(2026, 11, 1, 14, 30, 5, 999999)) == "2026-11-01 14:30:05"
    assert [cell(seconds, "duration_s") for seconds in (0.4, 59.6, 61, 3723)] == ["0s", "1m00s", "1m01s", "1h02m03s"]
    assert cell([0.91234, 0.95678]) == "[0.9123, 0.9568]"  # a confidence interval


def test_long_cells_are_cut_but_ids_never_are():
    long = "x" * 100
    assert cell(long) == "x" * (MAX_CELL - 1) + "…" and len(cell(long)) == MAX_CELL
    assert cell("runs/" + long, "id") == "runs/" + long


def test_a_local_runs_id_is_its_folder_as_typed_from_here(tmp_path, monkeypatch):
    # A checkout in "/tmp/new user/" lists runs/1, not a long path that breaks at its space when copied.
    project = tmp_path / "new user"
    (project / "my runs").mkdir(parents=True)
    monkeypatch.chdir(project)
    assert cell(str(project / "runs" / "1"), "id") == "runs/1"
    assert cell(str(project / "my runs" / "1"), "id") == "'my runs/1'"
    assert cell(str(tmp_path / "other" / "runs" / "1"), "id") == shell_command(tmp_path / "other" / "runs" / "1")
    assert cell(12, "id") == "12"


def test_tables_align_text_left_and_numbers_right():
    assert render_table([["id", "status", "result"], ["3", "COMPLETED", "0.91"], ["12", "FAILED", "-"]]) == (
        "id  status     result\n"
        " 3  COMPLETED    0.91\n"
        "12  FAILED          -\n")


def test_csv_and_json_keep_values_whole():
    rows = [{"id": 3, "start": datetime.datetime(2026, 11, 1, 14, 30), "result": 0.123456789, "name": "x" * 100}]
    out = io.StringIO()
    write(rows, ["id", "start", "result", "name", "missing"], "json", out)
    assert json.loads(out.getvalue()) == [{"id": 3, "start": "2026-11-01T14:30:00", "result": 0.123456789,
                                           "name": "x" * 100, "missing": None}]
    out = io.StringIO()
    write(rows, ["id", "result"], "csv", out)
    assert out.getvalue().splitlines() == ["id,result", "3,0.123456789"]


def test_legends_name_the_run_and_at_most_three_settings():
    row = {"id": 3, "experiment": "cifar", "config.lr": 0.01, "config.a": 1, "config.b": 2, "config.c": 3}
    assert legend_label(row, ["config.lr", "config.missing"], False) == "run 3 (lr=0.01)"
    assert legend_label(row, ["config.lr", "config.a", "config.b", "config.c"], True) == \
        "run 3 (cifar, lr=0.01, a=1, b=2)"
    assert legend_label(row, [], False) == "run 3"


def test_runs_on_other_data_or_other_splits_are_flagged():
    same = {"info.data.digest": "d1", "info.data.splits.train": "t1", "info.data.splits.val": "v1",
            "info.data.splits.test": "s1"}
    assert data_warning([{"id": 1, **same}, {"id": 2, **same}, {"id": 3}]) is None  # 3 predates fingerprints
    assert data_warning([{"id": 1, **same}, {"id": 2, **same, "info.data.digest": "d2"}]) == (
        "WARNING: runs 1, 2 trained on different data (info.data.digest differ); their results are not directly "
        "comparable")
    assert "different splits of the data (info.data.splits.val differ)" in data_warning(
        [{"id": 1, **same}, {"id": 2, **same, "info.data.splits.val": "v2"}])


def test_environment_differences_list_only_what_changed():
    first = {"python": "3.11.7", "torch": "2.5.0", "gpus": [], "packages": {"numpy": "2.1.0", "sacred": "0.8.7"}}
    second = {"python": "3.11.7", "torch": "2.6.0", "gpus": [], "packages": {"numpy": "2.1.0"}}
    assert differences([first, second, {}]) == {
        "gpus": [[], [], None], "packages.numpy": ["2.1.0", "2.1.0", None], "packages.sacred": ["0.8.7", None, None],
        "python": ["3.11.7", "3.11.7", None], "torch": ["2.5.0", "2.6.0", None]}
    assert differences([first, first]) == {}
