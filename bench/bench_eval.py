"""Benchmark: a repeat evaluation with cached real-face statistics vs recomputing them every time.

The original computed the real side of FID anew at every evaluation. evaluate.py reads the real
faces' features from saved_models/fid_stats/ once they exist, so a repeat evaluation runs the
extractor on the generated side only. Measured side by side in one run, arms interleaved (these
machines are shared and noisy), on the same data, extractor and generator:
  A. recompute: a fresh, empty statistics folder for every evaluation;
  B. cached: the folder warmed once beforehand;
reporting the real-side step alone (Evaluator set-up) and the whole evaluation, in wall and CPU
seconds (best of the repeats), and checking that both arms give the same metrics.

    python bench/bench_eval.py [--data PATH] [--max_per_class 30] [--repeats 3] [--run RUN_DIR]

Data: --data, else ../shared/datasets/fer2013.csv.gz when present, else synthetic faces (said so).
Extractor: saved_models/expression_classifier when trained, else an untrained classifier of the same
architecture (same cost; only timings are read). Generator: --run's, else an untrained T2 at its
default size (same cost as a trained one).
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import backend_env  # noqa: E402,F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras  # noqa: E402

import ccyclegan_t2  # noqa: E402
import classifier  # noqa: E402
import evaluate  # noqa: E402
import fid  # noqa: E402
import inference  # noqa: E402
import synthetic_faces  # noqa: E402
import run_folder  # noqa: E402
from data_loader import load_fer2013  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "datasets" / "fer2013.csv.gz"


def choose_data(path, workdir):
    if path:
        return pathlib.Path(path), f"{path}"
    if SHARED_DATA.exists():
        return SHARED_DATA, f"{SHARED_DATA} (FER2013)"
    synthetic = synthetic_faces.write_synthetic_csv(workdir / "synthetic.csv", train_per_class=8,
                                                    test_per_class=100, seed=0)
    return synthetic, "SYNTHETIC faces (no FER2013 found; pass --data PATH), 100 test faces per emotion"


def choose_extractor():
    saved = REPO / classifier.DEFAULT_DIR / classifier.MODEL_FILE
    if saved.is_file():
        return fid.ClassifierExtractor.load(saved), f"the trained classifier {saved}"
    keras.utils.set_random_seed(0)
    return (fid.ClassifierExtractor(classifier.build_classifier()),
            "an UNTRAINED classifier of the default architecture (no trained one yet; same cost)")


def choose_generator(run_dir):
    if run_dir:
        return run_folder.load_translator(run_dir).translate, f"the generator of {run_dir}"
    keras.utils.set_random_seed(0)
    config = ccyclegan_t2.Config()
    translator = inference.Translator(ccyclegan_t2, config, ccyclegan_t2.build_networks(config))
    return translator.translate, f"an UNTRAINED T2 generator, base_filters {config.base_filters} (same cost)"


def timed_evaluation(split, extractor, translate, max_per_class, stats_dir):
    """Wall and CPU seconds of the set-up (the real side) and of the whole evaluation, and its record.

    CPU time (all of this process's threads) is reported beside wall time because other jobs share
    these cores: it moves much less with their load.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    evaluator = evaluate.Evaluator(split, extractor, max_per_class, stats_dir=stats_dir)
    set_up = (time.perf_counter() - wall, time.process_time() - cpu)
    record = evaluator(translate)
    return {"set-up": set_up, "total": (time.perf_counter() - wall, time.process_time() - cpu)}, record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="FER2013 CSV or folder (default: ../shared copy)")
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--max_per_class", type=int, default=30,
                        help="faces per emotion (the generated side grows with it; 0 = all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per arm")
    parser.add_argument("--run", default=None, help="a trained run folder to take the generator from")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as workdir:
        workdir = pathlib.Path(workdir)
        data_path, data_text = choose_data(args.data, workdir)
        split = load_fer2013(data_path, cache_dir=workdir / "data_cache").split(args.split)
        extractor, extractor_text = choose_extractor()
        translate, generator_text = choose_generator(args.run)
        max_per_class = args.max_per_class or None
        print(f"data: {data_text}; {args.split}, {len(split)} faces, "
              f"{'all' if max_per_class is None else f'at most {max_per_class}'} per emotion")
        print(f"extractor: classifier features ({extractor.dim}-d) of {extractor_text}")
        print(f"generator: {generator_text}")
        print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPU cores (shared; arms interleaved)")

        warm_dir = workdir / "warm_stats"
        warm_times, reference = timed_evaluation(split, extractor, translate, max_per_class, warm_dir)
        n_real = sum(m["n_real"] for m in reference["per_emotion"].values())
        n_generated = sum(m["n_generated"] for m in reference["per_emotion"].values())
        print(f"per evaluation: {n_real} real faces; {n_generated} translations + as many reconstructions "
              f"(warm-up evaluation {warm_times['total'][0]:.1f} s, untimed)")
        arms = {"recomputed": [], "cached": []}
        for repeat in range(args.repeats):
            arms["recomputed"].append(timed_evaluation(split, extractor, translate, max_per_class,
                                                       workdir / f"fresh_stats_{repeat}"))
            arms["cached"].append(timed_evaluation(split, extractor, translate, max_per_class, warm_dir))

    same = all(record["per_emotion"] == reference["per_emotion"] for arm in arms.values() for _, record in arm)
    for part, what in (("set-up", "real-side statistics"), ("total", "whole evaluation")):
        for index, clock in ((0, "wall"), (1, "CPU")):
            a, b = (min(times[part][index] for times, _ in arms[name]) for name in ("recomputed", "cached"))
            print(f"{what:<21} {clock:>4} (best of {args.repeats}): recomputed {a:7.2f} s, cached {b:7.2f} s"
                  f" -> {a / b:5.2f}x")
    print(f"metrics identical in both arms: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
