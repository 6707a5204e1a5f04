"""A SLURM sweep's progress lines are not mixed with submitit's warning at every failed sacct poll."""
import logging

from tracker.sweep import quiet_sacct_retries


def test_sacct_retries_are_quiet_and_other_submitit_warnings_are_not(caplog):
    quiet_sacct_retries()
    quiet_sacct_retries()  # once per sweep or more: one filter
    submitit_logger = logging.getLogger("submitit")

    with caplog.at_level(logging.WARNING, logger="submitit"):
        submitit_logger.warning("Call #3 - Bypassing sacct error Command '['sacct']' returned non-zero exit status 1., "
                                "status may be inaccurate.")
        submitit_logger.warning("Bypassing state error:\nno such job")

    assert [record.getMessage() for record in caplog.records] == ["Bypassing state error:\nno such job"]
    assert len(submitit_logger.filters) == 1
