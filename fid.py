"""FID and KID between FER2013 faces and generated faces, with cached real-image statistics.

    python fid.py --data datasets/fer2013.csv --split PublicTest --emotion Happy --images out.npz

Two feature extractors share one interface (`name`, `dim`, `identity`, `__call__(faces) -> features`):
- `classifier` (default): the penultimate "features" layer of our FER2013 expression classifier
  (classifier.py). Works offline; it is the extractor our evaluations and comparisons use.
- `inception`: keras.applications.InceptionV3 (2048-d average pool, 299x299 bilinear, grey -> RGB, its
  own preprocess_input) with ImageNet weights from the Keras cache or --inception_weights. This is not
  the TF-2015 graph that papers use, so its FIDs compare our runs with each other, never with papers.

FID is biased at small N (two samples of one distribution score far above 0 when N is small); KID, the
unbiased squared MMD with the cubic polynomial kernel, is ~0 for equal distributions at any N. Every
number is printed with its extractor and N. Real-image features are cached under
saved_models/fid_stats/ (or $CCYCLEGAN_FID_STATS_DIR, or --stats_dir), keyed by the exact real faces used (a content hash, so the data file, split,
class and N are all part of it) and the extractor's weights, so a repeat evaluation only runs the
extractor on the generated faces. The cache is best-effort: a damaged file is recomputed, and a
folder that cannot be written costs one warning line, not the result.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import sys
import zipfile
from dataclasses import dataclass

import numpy as np

import atomic
import classifier
from data_loader import EMOTIONS, IMAGE_SIZE, DataError, image_files, load_fer2013, read_face, to_float
from lazy_import import lazy_import
from repo import REPO_ROOT

keras = lazy_import("keras")  # loads when an extractor is built: --help and flag errors answer first

DEFAULT_STATS_DIR = REPO_ROOT / "saved_models" / "fid_stats"
DEFAULT_CLASSIFIER_PATH = REPO_ROOT / "saved_models" / "expression_classifier"
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_CAVEAT = "for comparing our runs, not papers (keras InceptionV3 != the TF-2015 FID graph)"
INCEPTION_SIZE = 299
KID_SUBSETS = 100
KID_MAX_SUBSET_SIZE = 1000


class FIDError(ValueError):
    """Bad input or missing weights; the message is one line saying what to do."""


# ---------------------------------------------------------------------------------------------
# Distances on feature arrays (pure functions, float64)
# ---------------------------------------------------------------------------------------------

def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of features (N, d), accumulated in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise FIDError(f"feature statistics need at least 2 feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (rounding negatives to 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1^1/2 S2 S1^1/2), in float64.

    sqrt(S1 S2) has the same trace as the symmetric S1^1/2 S2 S1^1/2, whose eigenvalues eigh finds
    stably (scipy's sqrtm on the non-symmetric product is slower and can turn complex).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise FIDError(f"statistics do not match: means {mu1.shape} vs {mu2.shape}, "
                       f"covariances {sigma1.shape} vs {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))  # a true distance is >= 0; below it is rounding only


def kernel_inception_distance(features1, features2, num_subsets: int = KID_SUBSETS,
                              max_subset_size: int = KID_MAX_SUBSET_SIZE, seed: int = 0
                              ) -> tuple[float, float, int]:
    """KID: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean and std over random subsets.

    Returns (mean, std, subset size m); m = min(max_subset_size, N1, N2), each subset drawn without
    replacement, seeded. Every subset's kernel sums come from one pass over the kernel matrices
    (block by block) times 0/1 subset-membership matrices, instead of one kernel per subset.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise FIDError(f"KID needs two feature arrays (N, d) with one d, got {x.shape} and {y.shape}")
    m = min(max_subset_size, len(x), len(y))
    if m < 2:
        raise FIDError(f"KID needs at least 2 samples on each side, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    in_x, in_y = np.zeros((len(x), num_subsets)), np.zeros((len(y), num_subsets))
    for subset in range(num_subsets):
        in_x[rng.choice(len(x), m, replace=False), subset] = 1.0
        in_y[rng.choice(len(y), m, replace=False), subset] = 1.0
    dim = x.shape[1]
    self_xx = ((x * x).sum(axis=1) / dim + 1.0) ** 3 @ in_x  # the diagonal terms the unbiased form drops
    self_yy = ((y * y).sum(axis=1) / dim + 1.0) ** 3 @ in_y
    within = (_kernel_sums(x, x, in_x, in_x) - self_xx + _kernel_sums(y, y, in_y, in_y) - self_yy) / (m * (m - 1))
    estimates = within - 2.0 * _kernel_sums(x, y, in_x, in_y) / (m * m)
    return float(estimates.mean()), float(estimates.std()), m


def _kernel_sums(a, b, in_a, in_b, block: int = 1024) -> np.ndarray:
    """For each subset s: the sum of k(a_i, b_j) over i in subset s of a and j in subset s of b."""
    sums = np.zeros(in_a.shape[1])
    for start in range(0, len(a), block):
        kernel = a[start:start + block] @ b.T / a.shape[1] + 1.0
        sums += np.einsum("is,is->s", in_a[start:start + block], (kernel * kernel * kernel) @ in_b)
    return sums


# ---------------------------------------------------------------------------------------------
# Feature extractors
# ---------------------------------------------------------------------------------------------

def weights_fingerprint(model: keras.Model) -> str:
    """A short hash of a model's weights and of its layers' kinds: tells two checkpoints (or random
    inits) apart, and a judge from the same judge with flip averaging (same weights, more layers)."""
    digest = hashlib.sha256(" ".join(type(layer).__name__ for layer in model.layers).encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


def check_faces(faces, what: str = "faces") -> np.ndarray:
    """float32 (N, 48, 48, 1) in [-1, 1], or a one-line FIDError naming `what`."""
    faces = np.asarray(faces, np.float32)
    if faces.ndim == 3:
        faces = faces[..., None]
    if faces.ndim != 4 or faces.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1) or len(faces) == 0:
        raise FIDError(f"{what}: expected faces of shape (N, 48, 48[, 1]), got {faces.shape}")
    if not np.isfinite(faces).all() or faces.min() < -1.001 or faces.max() > 1.001:
        raise FIDError(f"{what}: float faces must be finite and lie in [-1, 1], got "
                       f"{np.nanmin(faces):.3g}..{np.nanmax(faces):.3g}")
    return faces


class FeatureExtractor:
    """Faces float32 (N, 48, 48, 1) in [-1, 1] -> features float64 (N, dim), computed in batches.

    `identity` names the extractor and its exact weights: it is part of every cache key.
    """

    name = "features"
    caveat = ""

    def __init__(self, model: keras.Model, batch_size: int = 128):
        self.model, self.batch_size = model, batch_size
        self.dim = int(model.outputs[0].shape[-1])
        self.identity = f"{self.name}-{weights_fingerprint(model)}"

    def _prepare(self, faces: np.ndarray):
        return faces

    def _outputs(self, faces):
        """The model's outputs (a list) for all faces, batch by batch, as float64 arrays."""
        faces = check_faces(faces)
        batches = []
        for start in range(0, len(faces), self.batch_size):
            outputs = self.model.predict_on_batch(self._prepare(faces[start:start + self.batch_size]))
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            batches.append([np.asarray(o, np.float64) for o in outputs])
        return [np.concatenate(parts) for parts in zip(*batches)]

    def __call__(self, faces) -> np.ndarray:
        return self._outputs(faces)[0]


class ClassifierExtractor(FeatureExtractor):
    """The expression classifier's "features" layer; `features_and_predictions` also gives its verdict."""

    name = "classifier"

    def __init__(self, model: keras.Model, batch_size: int = 256):
        try:
            features = model.get_layer("features").output
        except ValueError:
            raise FIDError(f"classifier {model.name!r} has no layer named 'features' "
                           f"(expected a model from classifier.build_classifier)") from None
        super().__init__(keras.Model(model.input, [features, model.outputs[0]]), batch_size)

    @classmethod
    def load(cls, path=None) -> "ClassifierExtractor":
        """From a saved classifier (its `.keras` file or folder); default saved_models/expression_classifier."""
        try:
            return cls(classifier.load_classifier(path or DEFAULT_CLASSIFIER_PATH))
        except FileNotFoundError as err:
            raise FIDError(str(err)) from None
        except (ValueError, OSError) as err:
            raise FIDError(f"{path or DEFAULT_CLASSIFIER_PATH}: not a loadable classifier ({err})") from None

    def features_and_predictions(self, faces) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, dim) float64 and the classifier's predicted emotions (N,) int64, in one pass."""
        features, probabilities = self._outputs(faces)
        return features, np.argmax(probabilities, axis=-1)


class InceptionExtractor(FeatureExtractor):
    """keras InceptionV3 average-pool features (2048-d) of faces resized to 299x299 RGB."""

    name = "inception"
    caveat = INCEPTION_CAVEAT

    def __init__(self, model: keras.Model, batch_size: int = 32):
        super().__init__(model, batch_size)

    def _prepare(self, faces):
        rgb = keras.ops.repeat(keras.ops.image.resize(
            faces, (INCEPTION_SIZE, INCEPTION_SIZE), interpolation="bilinear"), 3, axis=-1)
        return keras.applications.inception_v3.preprocess_input((rgb + 1.0) * 127.5)

    @classmethod
    def load(cls, weights_path=None) -> "InceptionExtractor":
        """With ImageNet weights from `weights_path` or the Keras cache; never downloads."""
        keras_home = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras"))
        path = pathlib.Path(weights_path or keras_home / "models" / INCEPTION_WEIGHTS_FILE)
        if not path.is_file():
            raise FIDError(f"{path}: Inception-v3 ImageNet weights not found; download {INCEPTION_WEIGHTS_URL} "
                           f"on a machine with internet and pass --inception_weights PATH (or put it in "
                           f"{keras_home / 'models'}), or use --extractor classifier, which works offline")
        try:
            model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=str(path),
                                                   input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
        except (ValueError, OSError) as err:
            raise FIDError(f"{path}: not InceptionV3 'notop' weights ({str(err).splitlines()[0]})") from None
        return cls(model)


def load_extractor(name: str, classifier_path=None, inception_weights=None) -> FeatureExtractor:
    if name == "classifier":
        return ClassifierExtractor.load(classifier_path)
    if name == "inception":
        return InceptionExtractor.load(inception_weights)
    raise FIDError(f"unknown extractor {name!r} (choose classifier or inception)")


# ---------------------------------------------------------------------------------------------
# Real-image statistics, cached
# ---------------------------------------------------------------------------------------------

@dataclass
class RealFeatures:
    features: np.ndarray  # (N, d) float64
    mu: np.ndarray
    sigma: np.ndarray
    cache_file: pathlib.Path | None = None
    from_cache: bool = False
    verdicts: np.ndarray | None = None  # the classifier's emotion for each face (classifier extractor)

    @property
    def n(self) -> int:
        return len(self.features)

    def accuracy_as(self, label: int) -> float | None:
        """How often the classifier reads these real faces as `label` (its recall when they are all `label`)."""
        return None if self.verdicts is None else float(np.mean(self.verdicts == label))


def stats_dir(path=None) -> pathlib.Path:
    """The cache folder of real-image features: `path`, else $CCYCLEGAN_FID_STATS_DIR, else saved_models/fid_stats."""
    return pathlib.Path(path or os.environ.get("CCYCLEGAN_FID_STATS_DIR") or DEFAULT_STATS_DIR)


def _read_real_features(cache_file: pathlib.Path) -> RealFeatures:
    with np.load(cache_file) as archive:
        verdicts = archive["verdicts"].astype(np.int64) if "verdicts" in archive else None
        return RealFeatures(archive["features"].astype(np.float64), archive["mu"], archive["sigma"],
                            cache_file, from_cache=True, verdicts=verdicts)


def subsample(images: np.ndarray, max_n: int | None, seed: int = 0) -> np.ndarray:
    """At most `max_n` of `images`, a seeded choice kept in data order (all of them when max_n is None)."""
    if max_n is None or len(images) <= max_n:
        return images
    return images[np.sort(np.random.default_rng(seed).permutation(len(images))[:max_n])]


def real_features(images_uint8: np.ndarray, extractor: FeatureExtractor, description: str = "",
                  cache_dir=None) -> RealFeatures:
    """Features and statistics of real faces uint8 (N, 48, 48), from the cache when it holds them.

    The key hashes the faces themselves (so data file, split, class and N are all in it) and the
    extractor's identity; `description` (e.g. "fer2013.csv PublicTest/Happy") is stored for humans.
    `cache_dir` defaults to `stats_dir()`; `cache_file` is None when the cache could not be written.
    """
    images_uint8 = np.ascontiguousarray(images_uint8, np.uint8)
    digest = hashlib.sha256(images_uint8.tobytes() + str(images_uint8.shape).encode())
    digest.update(extractor.identity.encode())
    digest.update(b"with verdicts")  # caches from before verdicts were stored are not reused
    cache_file = stats_dir(cache_dir) / f"{extractor.name}-{digest.hexdigest()[:24]}.npz"
    cached = atomic.read_cache(cache_file, _read_real_features)
    if cached is not None:
        return cached
    faces = to_float(images_uint8)
    if isinstance(extractor, ClassifierExtractor):
        features, verdicts = extractor.features_and_predictions(faces)
        judged = {"verdicts": verdicts.astype(np.int8)}
    else:
        features, verdicts, judged = extractor(faces), None, {}
    # The extractor's float32 outputs round-trip exactly through the float32 cache.
    features = features.astype(np.float32).astype(np.float64)
    mu, sigma = feature_statistics(features)
    about = json.dumps({"real": description, "n": len(features), "extractor": extractor.identity})
    written = atomic.write_cache(cache_file, lambda temporary: np.savez(
        temporary, features=features.astype(np.float32), mu=mu, sigma=sigma, about=about, **judged))
    return RealFeatures(features, mu, sigma, cache_file if written else None, verdicts=verdicts)


@dataclass
class Scores:
    fid: float
    kid: float
    kid_std: float
    kid_subset_size: int
    n_real: int
    n_generated: int
    fid_small_n: bool  # a side has no more samples than feature dimensions: its covariance is singular


def score(real: RealFeatures, generated_features: np.ndarray, seed: int = 0) -> Scores:
    """FID and KID of generated features against cached real features."""
    mu, sigma = feature_statistics(generated_features)
    kid, kid_std, subset_size = kernel_inception_distance(real.features, generated_features, seed=seed)
    n_generated, dim = generated_features.shape
    return Scores(frechet_distance(real.mu, real.sigma, mu, sigma), kid, kid_std, subset_size,
                  real.n, n_generated, min(real.n, n_generated) <= dim)


# ---------------------------------------------------------------------------------------------
# Generated images from a folder or an .npz
# ---------------------------------------------------------------------------------------------

def load_images(path) -> np.ndarray:
    """Faces float32 (N, 48, 48, 1) in [-1, 1] from a folder of PNG/JPG or an .npz.

    An .npz holds an array `images` (or exactly one array): uint8 in 0..255 or float in [-1, 1],
    shaped (N, 48, 48) or (N, 48, 48, 1).
    """
    path = pathlib.Path(path)
    if path.is_dir():
        return _load_image_folder(path)
    if not path.is_file():
        raise FIDError(f"{path}: no such file or folder (give a folder of PNG/JPG faces or an .npz)")
    if not zipfile.is_zipfile(path):  # numpy would try it as a pickle and blame that
        raise FIDError(f"{path}: not an .npz (give a folder of 48x48 PNG/JPG faces or an .npz)")
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.keys()}
    except (OSError, ValueError, EOFError) as err:
        raise FIDError(f"{path}: not a readable .npz ({str(err).splitlines()[0]})") from None
    if "images" not in arrays and len(arrays) != 1:
        raise FIDError(f"{path}: expected an array named 'images' (found {', '.join(arrays) or 'none'})")
    images = arrays["images"] if "images" in arrays else next(iter(arrays.values()))
    if images.dtype == np.uint8:
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.ndim != 3:
            raise FIDError(f"{path}: expected faces of shape (N, 48, 48[, 1]), got {images.shape}")
        images = to_float(images)
    elif not np.issubdtype(images.dtype, np.floating):
        raise FIDError(f"{path}: faces must be uint8 (0..255) or float in [-1, 1], got {images.dtype}")
    return check_faces(images, str(path))


def _load_image_folder(folder: pathlib.Path) -> np.ndarray:
    files = image_files(folder)
    if not files:
        raise FIDError(f"{folder}: no .png/.jpg images in this folder")
    return to_float(np.stack([read_face(file) for file in files]))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def emotion_label(name: str) -> int:
    """'Happy', 'happy' or '3' -> 3."""
    lookup = {e.lower(): i for i, e in enumerate(EMOTIONS)} | {str(i): i for i in range(len(EMOTIONS))}
    if name.lower() not in lookup:
        raise FIDError(f"unknown emotion {name!r} (choose one of {', '.join(EMOTIONS)} or 0..6)")
    return lookup[name.lower()]


def format_scores(scores: Scores, extractor: FeatureExtractor) -> list[str]:
    where = f"{extractor.name} features, N_real={scores.n_real}, N_generated={scores.n_generated}"
    lines = [f"FID [{where}] = {scores.fid:.5g}",
             f"KID [{where}, {KID_SUBSETS} subsets of {scores.kid_subset_size}] = "
             f"{scores.kid:.5g} +- {scores.kid_std:.2g}"]
    if scores.fid_small_n:
        lines.append(f"note: FID is not meaningful with N <= {extractor.dim} (the feature dimension); read KID")
    if extractor.caveat:
        lines.append(f"note: {extractor.name} FID/KID are {extractor.caveat}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="FER2013 CSV (.csv/.csv.gz) or image folder "
                        "(default datasets/fer2013.csv)")
    parser.add_argument("--split", default="PublicTest", help="real faces: Training, PublicTest or PrivateTest")
    parser.add_argument("--emotion", default=None, help="only real faces of this emotion (name or 0..6)")
    parser.add_argument("--images", required=True, help="generated faces: a folder of 48x48 PNG/JPG or an .npz")
    parser.add_argument("--extractor", default="classifier", choices=("classifier", "inception"))
    parser.add_argument("--classifier", default=None, help="expression classifier (.keras or its folder; "
                        "default saved_models/expression_classifier)")
    parser.add_argument("--inception_weights", default=None,
                        help=f"path to {INCEPTION_WEIGHTS_FILE} (default: the Keras cache)")
    parser.add_argument("--max_real", type=int, default=None, help="use at most this many real faces (seeded)")
    parser.add_argument("--stats_dir", default=None, help="cache of real-image features "
                        "(default $CCYCLEGAN_FID_STATS_DIR, else saved_models/fid_stats)")
    args = parser.parse_args(argv)
    try:
        generated = load_images(args.images)
        data = load_fer2013(args.data)
        real = data.split(args.split)
        if args.emotion is not None:
            real = real.of_class(emotion_label(args.emotion))
        if args.max_real is not None and args.max_real < 2:
            raise FIDError(f"--max_real must be at least 2, got {args.max_real}")
        real_images = subsample(real.images, args.max_real)
        if len(real_images) < 2:
            raise FIDError(f"{data.source}: {real.name} has {len(real_images)} faces, too few to compare")
        extractor = load_extractor(args.extractor, args.classifier, args.inception_weights)
        real_set = real_features(real_images, extractor, f"{data.source} {real.name}", args.stats_dir)
        scores = score(real_set, extractor(generated))
    except (FIDError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if real_set.cache_file is None:
        cached = "computed; not cached"
    else:
        cached = f"{'cached' if real_set.from_cache else 'computed and cached'}: {real_set.cache_file}"
    print(f"real: {data.source} {real.name}, N={real_set.n} ({cached})")
    print(f"generated: {args.images}, N={len(generated)}")
    print("\n".join(format_scores(scores, extractor)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
