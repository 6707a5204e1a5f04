"""System metrics of a running run, sampled by a background thread and logged as `sys.*` metrics beside the
training metrics (so Omniboard plots them), as MLflow, W&B and Aim do.

Every SYSTEM_METRICS_S seconds (default 10; 0 disables) one sample, whose step is the sample number:
- sys.cpu_percent, sys.memory_gb: the machine's CPU use (0-100 %) and memory in use (GB);
- sys.process_cpu_percent, sys.process_memory_gb: the run's process and its children (data loader workers), CPU % of
  one core (so above 100 on several cores) and resident memory (GB);
- sys.gpu<i>.util_percent, .memory_gb, .power_w, .temperature_c for each GPU NVIDIA's management library reports
  (nvidia-ml-py); without a GPU or driver there are none, and no warning.
The sampler reads counters only: it draws no random numbers and touches no tensors, so training is unchanged.
"""
import threading
import time

import psutil

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but a GPU-less install may leave it out
    pynvml = None

GB = 1e9


def start_system_metrics(run, interval_s):
    """Sample system metrics into `run` (a sacred Run) every `interval_s` seconds while it is RUNNING."""
    if interval_s > 0:
        SystemSampler(run, interval_s).start()


class SystemSampler(threading.Thread):
    def __init__(self, run, interval_s):
        # A daemon: the run's end never waits for it; it stops by itself once the run is no longer RUNNING.
        super().__init__(name="system-metrics", daemon=True)
        self.sacred_run = run
        self.interval_s = interval_s
        self.process = psutil.Process()
        self.processes = {}  # pid -> psutil.Process, kept so that cpu_percent measures since the previous sample
        self.gpus = gpu_handles()

    def run(self):
        # psutil's CPU percentages count from the previous call (in the same thread, for the machine's): the first.
        self._sample_processes()
        psutil.cpu_percent(None)
        step = 0
        while True:
            time.sleep(self.interval_s)
            if self.sacred_run.status != "RUNNING":
                return
            for name, value in self.sample().items():
                self.sacred_run.log_scalar(name, value, step)
            step += 1

    def sample(self):
        cpu_percent, rss = self._sample_processes()
        values = {
            "sys.cpu_percent": psutil.cpu_percent(None),
            "sys.memory_gb": psutil.virtual_memory().used / GB,
            "sys.process_cpu_percent": cpu_percent,
            "sys.process_memory_gb": rss / GB,
        }
        for index, handle in enumerate(self.gpus):
            values.update(_gpu_sample(f"sys.gpu{index}", handle))
        return values

    def _sample_processes(self):
        """CPU % and resident bytes of this process and its children, each measured since the previous call."""
        try:
            current = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            current = [self.process]
        self.processes = {p.pid: self.processes.get(p.pid, p) for p in current}
        cpu_percent = rss = 0.0
        for process in self.processes.values():
            try:
                with process.oneshot():
                    cpu_percent += process.cpu_percent(None)
                    rss += process.memory_info().rss
            except psutil.Error:  # a worker that ended meanwhile
                pass
        return cpu_percent, rss


def gpu_handles():
    """NVML handles of the machine's GPUs; none when NVML does not answer (no GPU, no driver)."""
    if pynvml is None:
        return []
    try:
        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError:
        return []


def _gpu_sample(prefix, handle):
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
