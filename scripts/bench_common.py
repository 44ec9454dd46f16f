"""Timing helpers shared by the bench scripts: interleaved runs, medians, ratio tables."""
import statistics
import time


def time_interleaved(candidates, repeats=5, warmup=1):
    """Median seconds of each callable in ``candidates`` (name -> fn), run in turns so that a
    noisy neighbour slows all of them alike."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def print_table(rows, title=None):
    """Rows of dicts with the same keys, printed as aligned columns."""
    if title:
        print(f"\n{title}")
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_format(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
