"""observers/startup.py: the collector collects rarely until the imports are done, then leaves the imported objects
alone, and gives back its own thresholds."""
import gc

from observers.startup import imports_done, quick_start, quick_start_done


def test_quick_start_collects_rarely_until_it_is_done():
    thresholds = gc.get_threshold()
    quick_start(git=False)
    try:
        assert gc.get_threshold()[0] > 100 * thresholds[0]
    finally:
        quick_start_done()
    assert gc.get_threshold() == thresholds


def test_imports_done_freezes_what_is_imported_and_gives_back_the_thresholds():
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    quick_start(git=False)
    try:
        imports_done()
        assert gc.get_freeze_count() > 0 and gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()
