"""Timing helpers every benchmark shares (importable because pytest puts this folder on sys.path)."""
import time


def best_of(fn, args, repeats: int) -> float:
    """The fastest wall time of `repeats` calls of fn(*args), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_seconds(fn, args) -> float:
    """The CPU time of this process during one call of fn(*args): less sensitive to other jobs than wall time."""
    start = time.process_time()
    fn(*args)
    return time.process_time() - start
