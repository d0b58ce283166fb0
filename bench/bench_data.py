"""Benchmark: loading FER2013 with data_loader vs the original CCycleGAN loader's per-row loop.

Measured side by side in one run (these machines are noisy), on the same file:
  1. cold load, ours: stream the CSV, parse pixels with numpy on raw bytes, keep uint8 (no cache);
  2. cold load, original: pandas row access + str.split per row into float32 (a faithful rewrite of
     the loop in the original data_loader.py, without its extra RGB copies);
  3. cached reload, ours (the .npz cache);
  plus the peak memory that Python allocations reach in 1 and 2 (tracemalloc, a separate pass).
Targets: cold >= 10x faster than the per-row loop; cached reload <= 0.5 s.

    python bench/bench_data.py [--data PATH] [--repeats 3]
"""

import argparse
import pathlib
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import data_loader as dl  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "fer2013.csv.gz"


def original_per_row_loop(path):
    """The original loader's loop: one pandas lookup and one str.split per face, float32 in [-1, 1]."""
    raw_data = pd.read_csv(path)
    n_train = int(np.sum(raw_data["Usage"] == "Training"))
    n_test = len(raw_data) - n_train
    train_images = np.zeros((n_train, 48, 48, 1), "float32")
    test_images = np.zeros((n_test, 48, 48, 1), "float32")
    train_labels, test_labels = np.zeros(n_train, "int32"), np.zeros(n_test, "int32")
    i_train = i_test = 0
    for i in range(len(raw_data)):
        x_pixels = np.array(raw_data["pixels"][i].split(" "), "float32") / 127.5 - 1.0
        x_pixels = x_pixels.reshape((48, 48, 1))
        if raw_data["Usage"][i] == "Training":
            train_images[i_train], train_labels[i_train] = x_pixels, int(raw_data["emotion"][i])
            i_train += 1
        else:
            test_images[i_test], test_labels[i_test] = x_pixels, int(raw_data["emotion"][i])
            i_test += 1
    return train_images, train_labels, test_images, test_labels


def best_time(function, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_mb(function):
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for our loads (the loop runs once)")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"error: {args.data} not found; pass --data PATH to a FER2013 CSV (.csv or .csv.gz)")

    with tempfile.TemporaryDirectory() as cache_dir:
        ours_cold, data = best_time(lambda: dl.load_fer2013(args.data, cache=False), args.repeats)
        loop_cold, (train, train_labels, test, _) = best_time(lambda: original_per_row_loop(args.data), 1)
        dl.load_fer2013(args.data, cache_dir=cache_dir)  # builds the cache
        cached, _ = best_time(lambda: dl.load_fer2013(args.data, cache_dir=cache_dir), args.repeats)
        cache_mb = sum(f.stat().st_size for f in pathlib.Path(cache_dir).glob("*.npz")) / 2**20

    ours_train = data.split("Training")
    assert np.array_equal(dl.to_float(ours_train.images), train), "the two loaders disagree"
    assert np.array_equal(ours_train.labels, train_labels)
    ours_peak = peak_mb(lambda: dl.load_fer2013(args.data, cache=False))
    loop_peak = peak_mb(lambda: original_per_row_loop(args.data))

    faces = sum(len(s) for s in data.splits.values())
    print(f"data: {args.data} ({args.data.stat().st_size / 2**20:.1f} MiB, {faces} faces; "
          f"splits {', '.join(f'{k}={len(v)}' for k, v in data.splits.items())})")
    print(f"cold load, ours (numpy byte parser, uint8):     {ours_cold:7.2f} s   peak {ours_peak:7.0f} MiB")
    print(f"cold load, original per-row loop (float32):     {loop_cold:7.2f} s   peak {loop_peak:7.0f} MiB")
    print(f"cached reload, ours (.npz, {cache_mb:.0f} MiB on disk):       {cached:7.2f} s")
    print(f"speed-up cold: {loop_cold / ours_cold:.1f}x (target >= 10x)   "
          f"cached reload {cached:.2f} s (target <= 0.5 s)   memory ratio {loop_peak / ours_peak:.1f}x less")
    print(f"in-memory size: ours {sum(s.images.nbytes for s in data.splits.values()) / 2**20:.0f} MiB uint8, "
          f"original {(train.nbytes + test.nbytes) / 2**20:.0f} MiB float32")


if __name__ == "__main__":
    main()
