"""submitit's private parts that this project uses, written for submitit 1.5. Why each is needed:

- generic_parameters: the AutoExecutor takes its parameters for every cluster (timeout_min, mem_gb, ...) unprefixed,
  checks their types and translates them, and a cluster's own only with the cluster's prefix; only a private method
  lists the former.
"""
import submitit

from compat import Package

SUBMITIT = Package("submitit", ("1.5",), "compat/submitit.py")


def generic_parameters():
    """The names of the AutoExecutor's parameters for every cluster."""
    return set(SUBMITIT.target(submitit.AutoExecutor, "_typed_parameters")())
