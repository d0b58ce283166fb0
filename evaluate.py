"""Evaluate a trained generator: FID/KID, expression accuracy and reconstruction L1 per target emotion.

    python evaluate.py saved_models/<run> --data datasets/fer2013.csv --split PublicTest

For each target emotion t: every test face whose label is not t is translated to t; the translations
are compared with the real test faces of emotion t by FID and KID on the expression classifier's
features (real features cached, see fid.py); the classifier's verdict on each translation is checked
against t (expression accuracy); and each translation is translated back to its source label and
compared with the input (reconstruction L1, mean absolute difference on the [-1, 1] scale).
Results per emotion and their mean are printed with their N and appended as one JSON line to
<run>/metrics.jsonl, at the training step of the run's checkpoint.npz (or --step): a folder that
holds only weights, such as the committed saved_models/pretrained, is evaluated but not recorded, so
its metrics.jsonl never gets a record that belongs to no step. A run folder that cannot be written
to costs the record, not the results: they are printed, then one `error:` line, exit status 2.
JSON has no NaN: a non-finite number is written as null with `<name>_nonfinite: true` beside it.
trainer.EvaluationCallback does the same during training every few epochs.

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
from lazy_import import lazy_import

keras = lazy_import("keras")  # only for the progress bar, once the generator has loaded Keras


def check_max_per_class(max_per_class: int | None) -> None:
    if max_per_class is not None and max_per_class < 2:
        raise fid.FIDError(f"max_per_class must be at least 2, got {max_per_class}")


class Evaluator:
    """Scores translators against one test split; real-face features are computed once (and cached)."""

    def __init__(self, split: Split, extractor: fid.ClassifierExtractor, max_per_class: int | None = None,
                 stats_dir=None, batch_size: int = 256):
        check_max_per_class(max_per_class)
        self.split_name, self.extractor = split.name, extractor
        self.max_per_class, self.batch_size = max_per_class, batch_size
        self.faces = {label: fid.subsample(split.of_class(label).images, max_per_class)
                      for label in range(len(EMOTIONS)) if np.sum(split.labels == label) >= 2}
        if len(self.faces) < 2:
            raise fid.FIDError(f"{split.where}: need at least 2 emotions with 2 or more faces each")
        self.real = {label: fid.real_features(faces, extractor, f"{split.where}/{EMOTIONS[label]}", stats_dir)
                     for label, faces in self.faces.items()}

    def __call__(self, translate, progress: bool = False) -> dict:
        """Metrics of `translate(x float32 (N,48,48,1) in [-1,1], target_labels int (N,)) -> faces`
        (a Translator's or the training GAN's: they batch). `progress`: a Keras progress bar over
        the target emotions, showing the last one's KID and accuracy."""
        per_emotion = {}
        bar = keras.utils.Progbar(len(self.real), unit_name="emotion",
                                  stateful_metrics=["kid", "accuracy"]) if progress else None
        for done, (target, real) in enumerate(self.real.items(), start=1):
            sources = [label for label in self.faces if label != target]
            x = to_float(np.concatenate([self.faces[label] for label in sources]))
            source_labels = np.concatenate([np.full(len(self.faces[label]), label) for label in sources])
            fakes = fid.check_faces(translate(x, np.full(len(x), target, np.int32)),
                                    "the generator's translations")
            features, verdicts = self.extractor.features_and_predictions(fakes)
            back = translate(fakes, source_labels.astype(np.int32))
            scores = fid.score(real, features)
            accuracy = float(np.mean(verdicts == target))
            per_emotion[EMOTIONS[target]] = {
                "n_real": scores.n_real, "n_generated": scores.n_generated,
                "fid": scores.fid, "fid_small_n": scores.fid_small_n,
                "kid": scores.kid, "kid_std": scores.kid_std, "kid_subset_size": scores.kid_subset_size,
                "accuracy": accuracy, "real_accuracy": real.accuracy_as(target),
                "relative_accuracy": relative_accuracy(accuracy, real.accuracy_as(target)),
                "rec_l1": float(np.mean(np.abs(back - x))),
            }
            if bar:
                bar.update(done, values=[("kid", scores.kid), ("accuracy", accuracy)])
        fid_emotions = [name for name, m in per_emotion.items() if not m["fid_small_n"]]
        relative = [m["relative_accuracy"] for m in per_emotion.values() if m["relative_accuracy"] is not None]
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
                "relative_accuracy": float(np.mean(relative)) if relative else None,
                "rec_l1": float(np.mean([m["rec_l1"] for m in per_emotion.values()])),
            },
            # The number that says whether every emotion works (an emotion the classifier never
            # reads on real faces has no relative accuracy and is left out).
            "min": {"relative_accuracy": float(np.min(relative)) if relative else None},
        }


def relative_accuracy(accuracy: float, real_accuracy: float | None) -> float | None:
    """Translations read as their target, relative to real faces of the target read as it.

    1.0: the classifier recognises the translations to t as often as it recognises real faces of t,
    so the number is fair to emotions the classifier itself finds hard (Fear, Disgust). None when
    the classifier never reads real faces of t as t (no reference to be relative to).
    """
    return None if not real_accuracy else accuracy / real_accuracy


def format_report(record: dict) -> str:
    """A table of one evaluation: every number with its extractor and N."""
    def ratio(value):
        return f"{value:.3f}" if value is not None else "n/a"

    lines = [f"{record['split']}, {record['extractor']} features ({record['feature_dim']}-d), "
             f"KID over {record['kid_subsets']} subsets; accuracy = the classifier's verdict equals the "
             f"target; real = its accuracy on real faces of the target; relative = accuracy / real",
             f"{'target':<9}{'N_real':>7}{'N_gen':>7}{'FID':>10}{'KID':>10}{'+-':>8}{'accuracy':>10}"
             f"{'real':>7}{'relative':>10}{'rec L1':>8}"]
    for name, m in record["per_emotion"].items():
        fid_text = f"{m['fid']:.2f}" + ("*" if m["fid_small_n"] else " ")
        lines.append(f"{name:<9}{m['n_real']:>7}{m['n_generated']:>7}{fid_text:>10}{m['kid']:>10.4f}"
                     f"{m['kid_std']:>8.4f}{m['accuracy']:>10.3f}{ratio(m.get('real_accuracy')):>7}"
                     f"{ratio(m.get('relative_accuracy')):>10}{m['rec_l1']:>8.4f}")
    mean = record["mean"]
    mean_fid = f"{mean['fid']:.2f} " if mean["fid"] is not None else "n/a "
    lines.append(f"{'mean':<9}{'':>7}{'':>7}{mean_fid:>10}{mean['kid']:>10.4f}{'':>8}"
                 f"{mean['accuracy']:>10.3f}{'':>7}{ratio(mean.get('relative_accuracy')):>10}"
                 f"{mean['rec_l1']:>8.4f}")
    lines.append(f"{'min':<9}{'':>59}{ratio(record.get('min', {}).get('relative_accuracy')):>10}")
    if any(m["fid_small_n"] for m in record["per_emotion"].values()):
        lines.append(f"* N <= {record['feature_dim']} (the feature dimension): FID is not meaningful there "
                     "and is left out of the mean; read its KID")
    return "\n".join(lines)


def now() -> str:
    """The time of an evaluation record, UTC, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def stamped(results, start, **where):
    """An evaluation's results as a metrics.jsonl record: when, of what (step, epoch, checkpoint,
    data: `where`), and how long since `start` (time.time())."""
    return {"time": now(), **where, **results, "seconds": round(time.time() - start, 1)}


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
                        "(default $CCYCLEGAN_FID_STATS_DIR, else saved_models/fid_stats)")
    parser.add_argument("--step", type=int, default=None, help="the training step the weights are from "
                        "(default: the run's checkpoint.npz); without either the results are not recorded")
    args = parser.parse_args(argv)
    start = time.time()
    run_dir = pathlib.Path(args.run_dir)
    try:
        if not run_dir.is_dir():
            raise fid.FIDError(f"{run_dir}: {'a file, not a' if run_dir.exists() else 'no such'} run folder")
        check_max_per_class(args.max_per_class)
        translator = run_folder.load_translator(run_dir)  # first: a broken generator fails before any work
        data = load_fer2013(args.data)
        evaluator = Evaluator(data.split(args.split), fid.ClassifierExtractor.load(args.classifier),
                              args.max_per_class, args.stats_dir)
        record = evaluator(translator.translate, progress=True)
    except (fid.FIDError, DataError, run_folder.RunFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    step, epoch = run_folder.trained_steps(run_dir)
    if args.step is not None and args.step != step:
        step, epoch = args.step, None
    generator = ", ".join(str(path) for path in run_folder.generator_files(run_dir))
    record = stamped(record, start, step=step, epoch=epoch, checkpoint=generator, data=data.source)
    print(format_report(record))
    if step is None:
        print(f"not recorded: {run_dir} has no {run_folder.CHECKPOINT} to say which training step these weights "
              f"are from; give --step N to append the results to its {run_folder.METRICS}")
        return 0
    try:
        print(f"appended to {run_folder.append_metrics(run_dir, record)}")
    except OSError as err:
        print(f"error: {run_dir / run_folder.METRICS}: results not recorded ({err.strerror or err}); "
              "they are printed above", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
