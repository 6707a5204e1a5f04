"""Training throughput of DistributedDataParallel with 1 to N processes, side by side (docs/ddp.md).

    python benchmarks/ddp_scaling.py                          # CPU: 1 and 2 processes, one core each, `smoke`
    python benchmarks/ddp_scaling.py --processes 1 2 4 8      # GPUs: one process per GPU (the default: 1..all GPUs)
    python benchmarks/ddp_scaling.py --named fast --batch-per-process 256 --steps 100 -- data.dataset=synthetic

Each count runs `torchrun --standalone --nproc_per_node=N experiments/cifar.py -u with NAMED ...` (unobserved: this
measures training, not tracking) with a fixed batch per process, so the global batch (data.batch_size) grows with N
(weak scaling). The figure is the trainer's own images/s over its training steps (validation and checkpoints
excluded), of the global batch; the speed-up is against 1 process. On the CPU every process gets one thread
(OMP_NUM_THREADS=1), so N processes use N cores.
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT = re.compile(r"; ([\d.]+) examples/s$", re.M)  # the trainer's last line


def images_per_s(processes, args):
    batch = args.batch_per_process * processes
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(REPO_ROOT / "experiments" / "cifar.py"), "-u", "with", args.named, f"data.batch_size={batch}",
               f"trainer.steps={args.steps}", f"trainer.val_every={args.steps}", f"trainer.log_every={args.steps}",
               "trainer.checkpoint_every=1000000", "trainer.progress=False", *args.updates]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if not args.cuda:
        env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    found = THROUGHPUT.search(result.stdout)
    if result.returncode != 0 or found is None:
        sys.exit(f"{processes} processes failed (exit {result.returncode}):\n"
                 f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return batch, float(found.group(1))


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", help="process counts (default: 1 and 2 on the CPU, "
                        "1 to the number of GPUs on CUDA)")
    parser.add_argument("--named", default="smoke", help="the named config of experiments/cifar.py (default smoke)")
    parser.add_argument("--batch-per-process", type=int, default=64, help="each process's share of a batch")
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("updates", nargs="*", help="more `with` updates, after --")
    args = parser.parse_args()
    args.cuda = torch.cuda.is_available()
    counts = args.processes or (list(range(1, torch.cuda.device_count() + 1)) if args.cuda else [1, 2])
    device = torch.cuda.get_device_name() if args.cuda else f"CPU, {os.cpu_count()} cores, 1 thread per process"
    print(f"{args.named}, {args.steps} steps, batch {args.batch_per_process} per process; {device}; "
          f"torch {torch.__version__}")
    print(f"{'processes':>9}  {'global batch':>12}  {'images/s':>9}  {'speed-up':>8}  {'efficiency':>10}")
    per_process = None  # images/s of one process: the first count's, divided by its processes
    for processes in counts:
        batch, speed = images_per_s(processes, args)
        per_process = per_process or speed / processes
        speedup = speed / per_process
        print(f"{processes:>9}  {batch:>12}  {speed:>9.1f}  {speedup:>7.2f}x  {speedup / processes:>10.0%}",
              flush=True)


if __name__ == "__main__":
    main()
