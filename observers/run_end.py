"""Work to do when a Sacred run's main function ends, whether it returns or raises (Sacred's post-run hooks run only
after a return)."""


def at_main_end(run, finish):
    """Call `finish()` once `run`'s (a sacred Run, in a pre-run hook) main function has returned or raised, before
    Sacred sends the run's last heartbeat (so what `finish` logs or adds is stored)."""
    main = run.main_function

    def main_then_finish(*args):
        try:
            return main(*args)
        finally:
            finish()

    run.main_function = main_then_finish  # Sacred calls it after the pre-run hooks
