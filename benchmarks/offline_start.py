"""What a command costs when no database runs on this machine (no `tracker db`, no compose stack): `tracker runs` in
a folder with no runs and no MONGO_URL (the project's `tracker db` socket, which does not exist), side by side with
the same command that waits for pymongo's server selection instead of taking the refused connection as the answer
(runstore.database.connect).

    python benchmarks/offline_start.py [--repeat 5]

Times are wall-clock seconds of the whole process, the least of --repeat runs each, alternating.
"""
import argparse
import os
import subprocess
import sys
import tempfile

from local_mongo import REPO_ROOT
from ui_speed import seconds

# The command with runstore.database's fast answer switched off, as connect() was without it.
WAITING = ("import sys, runstore.database as database; database._refused_here = lambda url, timeout_s: False; "
           "from tracker.cli import main; sys.exit(main())")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        env = {**{key: value for key, value in os.environ.items() if key != "MONGO_URL"},
               "RUNS_DIR": os.path.join(workdir, "runs"), "PYTHONPATH": str(REPO_ROOT)}
        commands = {"refused at once": [sys.executable, "-m", "tracker", "runs"],
                    "server selection waited for": [sys.executable, "-c", WAITING, "runs"]}
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeat):
            for label, command in commands.items():
                took, result = seconds(lambda: subprocess.run(command, cwd=workdir, env=env, capture_output=True,  # noqa: B023
                                                             text=True))
                assert result.returncode == 0, result.stderr
                times[label].append(took)
        fast, slow = min(times["refused at once"]), min(times["server selection waited for"])
        print(f"tracker runs with no database on this machine: {fast:.2f} s; waiting for server selection: "
              f"{slow:.2f} s ({slow / fast:.1f}x)")


if __name__ == "__main__":
    main()
