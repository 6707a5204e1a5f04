"""System metrics of a running run, sampled by a background thread and logged as `sys.*` metrics beside the
training metrics (so Omniboard plots them), as MLflow, W&B and Aim do.

One sample when the run starts, one every SYSTEM_METRICS_S seconds (default 10; 0 disables them) and one when its
main function ends, so a run shorter than the interval has two; the step is the sample number:
- sys.cpu_percent, sys.memory_gb: the machine's CPU use (0-100 %) and memory in use (GB);
- sys.process_cpu_percent, sys.process_memory_gb: the run's process and its children (data loader workers), CPU % of
  one core (so above 100 on several cores) since the previous sample (the first: since the process started) and
  resident memory (GB);
- sys.gpu<i>.util_percent, .memory_gb, .power_w, .temperature_c for each GPU NVIDIA's management library reports
  (nvidia-ml-py); without a GPU or driver there are none, and no warning.
The sampler reads counters only: it draws no random numbers and touches no tensors, so training is unchanged.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import psutil
from compat.sacred import at_main_end

if TYPE_CHECKING:
    from sacred.run import Run

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but a GPU-less install may leave it out
    pynvml = None

GB = 1e9


def start_system_metrics(run: Run, interval_s: float) -> None:
    """Sample system metrics into `run` (a sacred Run, in a pre-run hook) now, every `interval_s` seconds, and when
    its main function returns or raises."""
    if interval_s <= 0:
        return
    sampler = SystemSampler(run, interval_s)
    sampler.log_sample()
    sampler.start()
    at_main_end(run, sampler.stop)


class SystemSampler(threading.Thread):
    def __init__(self, run: Run, interval_s: float) -> None:
        # A daemon: the process's end never waits for it.
        super().__init__(name="system-metrics", daemon=True)
        self.sacred_run = run
        self.interval_s = interval_s
        self.process = psutil.Process()
        # pid -> (psutil.Process, its CPU seconds and the time at the previous sample)
        self.cpu_seconds: dict[int, tuple[Any, float, float]] = {}
        self.gpus = gpu_handles()
        self.step = 0
        self.lock = threading.Lock()  # the periodic and the last sample never interleave their steps
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s) and self.sacred_run.status == "RUNNING":
            self.log_sample()

    def stop(self) -> None:
        """Take the last sample and end the thread."""
        self.stopped.set()
        self.log_sample()

    def log_sample(self) -> None:
        with self.lock:
            for name, value in self.sample().items():
                self.sacred_run.log_scalar(name, value, self.step)
            self.step += 1

    def sample(self) -> dict[str, float]:
        cpu_percent, rss = self._sample_processes()
        values = {
            # Since the previous call; the first call, in the pre-run hook, counts from psutil's import.
            "sys.cpu_percent": psutil.cpu_percent(None),
            "sys.memory_gb": psutil.virtual_memory().used / GB,
            "sys.process_cpu_percent": cpu_percent,
            "sys.process_memory_gb": rss / GB,
        }
        for index, handle in enumerate(self.gpus):
            values.update(_gpu_sample(f"sys.gpu{index}", handle))
        return values

    def _sample_processes(self) -> tuple[float, float]:
        """CPU % and resident bytes of this process and its children, CPU measured since the previous call (for a
        process not seen before, since it started)."""
        try:
            current = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            current = [self.process]
        now = time.time()
        cpu_percent = rss = 0.0
        seen = {}
        for process in current:
            process, cpu_before, time_before = self.cpu_seconds.get(process.pid, (process, 0.0, None))
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss += process.memory_info().rss
                    time_before = process.create_time() if time_before is None else time_before
            except psutil.Error:  # a worker that ended meanwhile
                continue
            cpu = times.user + times.system
            cpu_percent += 100 * (cpu - cpu_before) / max(now - time_before, 1e-3)
            seen[process.pid] = (process, cpu, now)
        self.cpu_seconds = seen
        return cpu_percent, rss


def gpu_handles() -> list[Any]:
    """NVML handles of the machine's GPUs; none when NVML does not answer (no GPU, no driver)."""
    if pynvml is None:
        return []
    try:
        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError:
        return []


def _gpu_sample(prefix: str, handle: Any) -> dict[str, float]:
    readings = {
        "util_percent": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "memory_gb": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used / GB,
        "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,  # reported in mW
        "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
    }
    values = {}
    for name, read in readings.items():
        try:
            values[f"{prefix}.{name}"] = float(read())
        except pynvml.NVMLError:  # not every GPU reports every reading (e.g. power on some boards)
            pass
    return values
