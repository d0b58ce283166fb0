"""Evaluate a trained generator: FID/KID, expression accuracy and reconstruction L1 per target emotion.

    python evaluate.py saved_models/<run> --data datasets/fer2013.csv --split PublicTest

For each target emotion t: every test face whose label is not t is translated to t; the translations
are compared with the real test faces of emotion t by FID and KID on the expression classifier's
features (real features cached, see fid.py); the classifier's verdict on each translation is checked
against t (expression accuracy); and each translation is translated back to its source label and
compared with the input (reconstruction L1, mean absolute difference on the [-1, 1] scale).
Results per emotion and their mean are printed with their N and appended as one JSON line to
<run>/metrics.jsonl. trainer.EvaluationCallback does the same during training every few epochs.

FID is biased at small N, and meaningless when a class has no more faces than the feature dimension
(Disgust has 55-56 test faces): such classes are marked `fid_small_n`, left out of the mean FID, and
are read by their KID, which is unbiased at any N.
"""
from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
import time

import numpy as np

import fid
import run_folder
from data_loader import EMOTIONS, DataError, Split, load_fer2013, to_float


class Evaluator:
    """Scores translators against one test split; real-face features are computed once (and cached)."""

    def __init__(self, split: Split, extractor: fid.ClassifierExtractor, max_per_class: int | None = None,
                 stats_dir=None, source: str = ""):
        if max_per_class is not None and max_per_class < 2:
            raise fid.FIDError(f"max_per_class must be at least 2, got {max_per_class}")
        self.split_name, self.extractor = split.name, extractor
        self.max_per_class = max_per_class
        self.faces = {label: fid.subsample(split.of_class(label).images, max_per_class)
                      for label in range(len(EMOTIONS)) if np.sum(split.labels == label) >= 2}
        where = f"{source} {split.name}".strip()
        if len(self.faces) < 2:
            raise fid.FIDError(f"{where}: need at least 2 emotions with 2 or more faces each")
        self.real = {label: fid.real_features(faces, extractor, f"{where}/{EMOTIONS[label]}",
                                              stats_dir or fid.DEFAULT_STATS_DIR)
                     for label, faces in self.faces.items()}

    def __call__(self, translate) -> dict:
        """Metrics of `translate(x float32 (N,48,48,1) in [-1,1], target_labels int (N,)) -> faces`
        (a Translator's or the training GAN's: they batch)."""
        per_emotion = {}
        for target, real in self.real.items():
            sources = [label for label in self.faces if label != target]
            x = to_float(np.concatenate([self.faces[label] for label in sources]))
            source_labels = np.concatenate([np.full(len(self.faces[label]), label) for label in sources])
            fakes = fid.check_faces(translate(x, np.full(len(x), target, np.int32)),
                                    "the generator's translations")
            features, verdicts = self.extractor.features_and_predictions(fakes)
            back = translate(fakes, source_labels.astype(np.int32))
            scores = fid.score(real, features)
            per_emotion[EMOTIONS[target]] = {
                "n_real": scores.n_real, "n_generated": scores.n_generated,
                "fid": scores.fid, "fid_small_n": scores.fid_small_n,
                "kid": scores.kid, "kid_std": scores.kid_std, "kid_subset_size": scores.kid_subset_size,
                "accuracy": float(np.mean(verdicts == target)),
                "rec_l1": float(np.mean(np.abs(back - x))),
            }
        fid_emotions = [name for name, m in per_emotion.items() if not m["fid_small_n"]]
        return {
            "split": self.split_name, "max_per_class": self.max_per_class,
            "extractor": self.extractor.name, "extractor_id": self.extractor.identity,
            "feature_dim": self.extractor.dim, "kid_subsets": fid.KID_SUBSETS,
            "per_emotion": per_emotion,
            "mean": {
                "fid": float(np.mean([per_emotion[e]["fid"] for e in fid_emotions])) if fid_emotions else None,
                "fid_emotions": fid_emotions,
                "kid": float(np.mean([m["kid"] for m in per_emotion.values()])),
                "accuracy": float(np.mean([m["accuracy"] for m in per_emotion.values()])),
                "rec_l1": float(np.mean([m["rec_l1"] for m in per_emotion.values()])),
            },
        }


def format_report(record: dict) -> str:
    """A table of one evaluation: every number with its extractor and N."""
    lines = [f"{record['split']}, {record['extractor']} features ({record['feature_dim']}-d), "
             f"KID over {record['kid_subsets']} subsets; accuracy = the classifier's verdict equals the target",
             f"{'target':<9}{'N_real':>7}{'N_gen':>7}{'FID':>10}{'KID':>10}{'+-':>8}{'accuracy':>10}{'rec L1':>8}"]
    for name, m in record["per_emotion"].items():
        fid_text = f"{m['fid']:.2f}" + ("*" if m["fid_small_n"] else " ")
        lines.append(f"{name:<9}{m['n_real']:>7}{m['n_generated']:>7}{fid_text:>10}{m['kid']:>10.4f}"
                     f"{m['kid_std']:>8.4f}{m['accuracy']:>10.3f}{m['rec_l1']:>8.4f}")
    mean = record["mean"]
    mean_fid = f"{mean['fid']:.2f} " if mean["fid"] is not None else "n/a "
    lines.append(f"{'mean':<9}{'':>7}{'':>7}{mean_fid:>10}{mean['kid']:>10.4f}{'':>8}"
                 f"{mean['accuracy']:>10.3f}{mean['rec_l1']:>8.4f}")
    if any(m["fid_small_n"] for m in record["per_emotion"].values()):
        lines.append(f"* N <= {record['feature_dim']} (the feature dimension): FID is not meaningful there "
                     "and is left out of the mean; read its KID")
    return "\n".join(lines)


def now() -> str:
    """The time of an evaluation record, UTC, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a training run's folder (saved_models/<run>)")
    parser.add_argument("--data", default=None, help="FER2013 CSV or image folder (default datasets/fer2013.csv)")
    parser.add_argument("--split", default="PublicTest", help="the test split to translate and compare with")
    parser.add_argument("--max_per_class", type=int, default=None,
                        help="use at most N faces per emotion (seeded), for quick checks; default all")
    parser.add_argument("--classifier", default=None, help="expression classifier (.keras or its folder; "
                        "default saved_models/expression_classifier)")
    parser.add_argument("--stats_dir", default=None, help="cache of real-face features "
                        "(default saved_models/fid_stats)")
    args = parser.parse_args(argv)
    start = time.time()
    run_dir = pathlib.Path(args.run_dir)
    try:
        if not run_dir.is_dir():
            raise fid.FIDError(f"{run_dir}: no such run folder")
        run_folder.experiment_of(run_dir)  # a run of a known experiment, checked before anything loads
        data = load_fer2013(args.data)
        evaluator = Evaluator(data.split(args.split), fid.ClassifierExtractor.load(args.classifier),
                              args.max_per_class, args.stats_dir, source=data.source)
        translator = run_folder.load_translator(run_dir)
        record = evaluator(translator.translate)
    except (fid.FIDError, DataError, run_folder.RunFolderError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    step, epoch = run_folder.trained_steps(run_dir)
    generator = ", ".join(str(path) for path in run_folder.generator_files(run_dir))
    record = {"time": now(), "step": step, "epoch": epoch, "checkpoint": generator, "data": data.source,
              **record, "seconds": round(time.time() - start, 1)}
    print(format_report(record))
    print(f"appended to {run_folder.append_metrics(run_dir, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
