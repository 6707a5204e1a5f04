"""`tracker export`: a folder that rebuilds a run's trained network without the database or this project's CLI."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from runstore.errors import UserError
from runstore.run_store import open_run
from runstore.settings import create_tracker_folder
from tracker.models import WEIGHTS, rebuild
from tracker.options import add_run_argument

if TYPE_CHECKING:
    from compat.argparse import SubParsers
    import argparse

    import torch

    from runstore.run_store import StoredRun

GUIDE = """\
# {label}: {experiment}, exported by `tracker export`

- `{weights}`: the network's weights (a state dict; `torch.load(path, weights_only=True)`).
- `config.json`: the run's config, seed included. `results.json`: its results.
- `source/`: the run's source files, as Sacred recorded them.
{program}
To rebuild the network from the experiment's code instead (its `rebuild` command, ingredients/rebuild.py), with
its project on the Python path:

    import importlib.util, json, torch
    spec = importlib.util.spec_from_file_location("experiment", "{mainfile}")
    experiment = importlib.util.module_from_spec(spec); spec.loader.exec_module(experiment)
    config = json.load(open("config.json"))
    task, data, network = experiment.ex.run("rebuild", config_updates=config, options={{"--loglevel": "ERROR"}}).result
    network.load_state_dict(torch.load("{weights}", weights_only=True)); network.eval()
"""
PROGRAM_GUIDE = """\
- `model.pt2`: the network as a `torch.export` program, which needs neither this code nor the experiment's:
  `network = torch.export.load("model.pt2").module()`. `example_inputs.pt` is a batch it was exported with.
  It holds the network's forward pass only (not test-time augmentation, `model.tta`).
"""


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a folder that rebuilds a run's trained network",
        description=(
            "Write DIR (it must not exist yet) with RUN's weights, config.json, results.json, the run's source files, "
            "a torch.export program of the network when it exports (model.pt2), and a README.md saying how to load "
            "each. The network is rebuilt by this checkout's experiment code from the run's stored config."
        ),
    )
    add_run_argument(parser, "RUN DIR [--which best|last]")
    parser.add_argument("dir", type=Path, metavar="DIR", help="the folder to create")
    parser.add_argument("--which", choices=WEIGHTS, default="best",
                        help="the weights of the best validation score (default) or those at the end of training")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dir.exists():
        raise UserError(f"{args.dir} exists already; give a new folder, or remove it first")
    stored = open_run(args.run)
    task, task_data, network = rebuild(stored, args.which)
    args.dir.parent.mkdir(parents=True, exist_ok=True)
    # Written next to DIR and renamed into place at the end, so DIR is whole or absent.
    with tempfile.TemporaryDirectory(dir=args.dir.parent, prefix=f".{args.dir.name}.") as partial:
        folder = create_tracker_folder(Path(partial) / "export")  # a record, so no uncommitted change of a run
        write_export(stored, task_data, network, args.which, folder)
        folder.rename(args.dir)
    print(f"Exported {stored.label} to {args.dir}")
    return 0


def write_export(stored: StoredRun, task_data: Any, network: torch.nn.Module, which: str,
                 folder: Path) -> None:
    import torch

    (folder / "source").mkdir(parents=True)
    weights = stored.artifact(WEIGHTS[which])
    assert weights is not None  # rebuild refuses a run without them
    (folder / WEIGHTS[which]).write_bytes(weights)
    (folder / "config.json").write_text(json.dumps(stored.config, indent=2))
    results = stored.artifact("results.json") or json.dumps({"result": stored.doc.get("result")}).encode()
    (folder / "results.json").write_bytes(results)
    for path, content in stored.sources().items():
        target = folder / "source" / safe_relative(path, stored.label)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    inputs = next(iter(task_data.test))[0][:2]
    exported = export_program(network, inputs, folder / "model.pt2")
    if exported:
        torch.save(inputs, folder / "example_inputs.pt")
    experiment = stored.doc["experiment"]
    (folder / "README.md").write_text(GUIDE.format(
        label=stored.label, experiment=experiment["name"], weights=WEIGHTS[which], mainfile=experiment["mainfile"],
        program=PROGRAM_GUIDE if exported else "- No `model.pt2`: this network does not export with torch.export.\n",
    ))


def export_program(network: torch.nn.Module, inputs: Any, path: Path) -> bool:
    """Save `network` as a torch.export program at `path`; False (with one line why) when it does not export."""
    import torch

    try:
        torch.export.save(torch.export.export(network, (inputs,)), path)
    except Exception as error:  # noqa: BLE001 - torch.export raises many kinds; the weights are exported anyway
        print(f"The network does not export with torch.export ({type(error).__name__}); model.pt2 not written")
        path.unlink(missing_ok=True)
        return False
    return True


def safe_relative(path: str, label: str) -> Path:
    """A stored source path as a path inside the export: relative and without '..' (the path is data)."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(f"{label} stores a source file at {path!r}, outside its experiment's folder; "
                        f"it was not exported")
    return Path(*relative.parts)
