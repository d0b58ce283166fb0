"""Synthetic FER2013-format faces: seven cartoon expressions, drawn in pure numpy.

The ground truth for learning tests and `--demo` runs: a small CNN separates the seven
expressions almost perfectly, so a generator's translations can be judged offline.

Each face has an *identity* (position, scale, aspect, gaze, skin/background grey levels,
contrast, noise) and an *expression* (brows, eyes, mouth, nose wrinkles). Identity and the
small per-sample expression jitter are drawn from `seed` in a fixed order that does not depend
on the labels, so `draw_faces(labels_a, seed)[i]` and `draw_faces(labels_b, seed)[i]` are the
same person with two expressions -- a ground-truth translation pair.

Shapes are drawn as anti-aliased signed-distance masks on a coordinate grid, vectorised over
the batch (10k faces in a few seconds). `train_judge` trains and saves the classifier that
learning tests use to check a generator's translations.
"""
import pathlib

import numpy as np

from data_loader import IMAGE_SIZE, NUM_CLASSES, write_fer2013_csv

# Expression geometry in face units (pixels at scale 1, origin at the face centre, y down).
# brow_in / brow_out: brow end heights (inner end near the nose, outer end near the temple).
# eye_h: eye half-height (openness). mouth_w: half-width. bend: corners up (+) or down (-).
# tilt: one corner raised (sign randomised per face). open_up / open_dn: mouth opening above /
# below the lip line. lip: lip half-thickness. wrinkle: opacity of nose wrinkles.
_COLUMNS = ("brow_in", "brow_out", "eye_h", "mouth_w", "bend", "tilt",
            "open_up", "open_dn", "lip", "wrinkle")
_EXPRESSIONS = np.array([
    # brow_in brow_out eye_h mouth_w bend  tilt open_up open_dn lip  wrinkle
    [-6.0,   -10.5,    1.3,  5.5,   -0.8,  0.0, 0.0,    0.0,    1.3, 0.0],  # Angry: V brows, tight mouth
    [-7.5,    -8.5,    1.1,  6.5,   -1.5,  2.8, 0.0,    0.9,    0.9, 1.0],  # Disgust: lip raised on one side, wrinkles
    [-12.5,  -10.0,    3.2,  7.0,   -1.0,  0.0, 1.2,    1.8,    0.8, 0.0],  # Fear: raised brows, wide eyes, small open mouth
    [-9.5,    -9.5,    1.3,  9.5,    4.5,  0.0, 0.0,    3.5,    0.8, 0.0],  # Happy: strong open smile
    [-11.5,   -7.0,    1.8,  7.5,   -3.8,  0.0, 0.0,    0.0,    0.9, 0.0],  # Sad: outer-down brows, downturned mouth
    [-13.0,  -13.0,    3.2,  3.4,    0.0,  0.0, 3.6,    3.6,    0.8, 0.0],  # Surprise: high brows, round O mouth
    [-9.0,    -9.0,    2.0,  7.0,    0.0,  0.0, 0.0,    0.0,    0.8, 0.0],  # Neutral: level brows, straight mouth
], dtype=np.float32)

_EYE_X, _EYE_Y, _EYE_W = 7.0, -4.0, 3.2        # eye centres at (+-7, -4), half-width 3.2
_BROW_X_IN, _BROW_X_OUT, _BROW_HW = 3.0, 10.5, 0.85
_MOUTH_Y = 10.0
_CHUNK = 1024                                   # faces drawn per vectorised block (bounds memory)


def _coverage(signed_dist):
    """Anti-aliased coverage of a shape from its signed distance in pixels (negative inside)."""
    return np.clip(0.5 - signed_dist, 0.0, 1.0)


def _ellipse_dist(x, y, cx, cy, a, b):
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on circles)."""
    u, v = (x - cx) / a, (y - cy) / b
    q = np.sqrt(u * u + v * v) + 1e-6
    grad = np.sqrt((u / a) ** 2 + (v / b) ** 2) / q + 1e-6
    return (q - 1.0) / grad


def _segment_dist(x, y, x0, y0, x1, y1):
    """Distance to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
    return np.hypot(x - x0 - t * dx, y - y0 - t * dy)


def _mouth_dist(x, y, mx, my, w, bend, tilt, open_up, open_dn):
    """Signed distance to the mouth opening: the region between the lip line (a parabola with
    bent, tilted corners) raised by open_up and lowered by open_dn along an ellipse profile.
    With no opening it is the distance to the lip line itself."""
    t = (x - mx) / w
    line_y = my - bend * t * t - tilt * t
    slope_norm = np.sqrt(1.0 + ((2.0 * bend * t + tilt) / w) ** 2)
    profile = np.sqrt(np.clip(1.0 - t * t, 0.0, 1.0))
    above = (line_y - open_up * profile - y) / slope_norm    # > 0 above the upper lip
    below = (y - line_y - open_dn * profile) / slope_norm    # > 0 below the lower lip
    beyond = (np.abs(t) - 1.0) * w                           # > 0 past the corners
    return np.maximum(np.maximum(above, below), beyond)


def _draw_block(labels, identity, jitter, noise):
    """Render one block of faces; every parameter array has shape (n, 1, 1)."""
    expr = {name: _EXPRESSIONS[labels, i][:, None, None] * jitter[name]
            for i, name in enumerate(_COLUMNS)}
    expr["tilt"] = expr["tilt"] * identity["tilt_sign"]
    grid = np.arange(IMAGE_SIZE, dtype=np.float32)
    y, x = grid[None, :, None], grid[None, None, :]
    cx, cy, s = identity["cx"], identity["cy"], identity["scale"]

    face = _coverage(_ellipse_dist(x, y, cx, cy, 17.0 * s * identity["aspect"], 21.0 * s))
    img = identity["bg"] + (identity["skin"] - identity["bg"]) * face
    dark = identity["skin"] * 0.15
    white = np.minimum(identity["skin"] + 0.2, 1.0)

    for side in (-1.0, 1.0):
        ex, ey = cx + side * _EYE_X * s, cy + _EYE_Y * s
        eye = _coverage(_ellipse_dist(x, y, ex, ey, _EYE_W * s, expr["eye_h"] * s))
        img = img + (white - img) * eye
        pupil = _coverage(_ellipse_dist(x, y, ex + identity["gaze"] * s, ey, 1.5 * s, 1.5 * s))
        img = img + (dark - img) * (pupil * eye)
        brow = _coverage(_segment_dist(
            x, y, cx + side * _BROW_X_IN * s, cy + expr["brow_in"] * s,
            cx + side * _BROW_X_OUT * s, cy + expr["brow_out"] * s) - _BROW_HW * s)
        img = img + (dark - img) * brow
        wrinkle = _coverage(_segment_dist(
            x, y, cx + side * 1.2 * s, cy - 1.5 * s, cx + side * 3.5 * s, cy + 0.5 * s) - 0.5 * s)
        img = img + (dark - img) * (wrinkle * np.clip(expr["wrinkle"], 0.0, 1.0))

    nose = _coverage(_segment_dist(x, y, cx, cy - 1.0 * s, cx, cy + 4.0 * s) - 0.5 * s)
    img = img + (dark - img) * (0.4 * nose)
    mouth = _coverage(_mouth_dist(
        x, y, cx, cy + _MOUTH_Y * s, expr["mouth_w"] * s, expr["bend"] * s, expr["tilt"] * s,
        expr["open_up"] * s, expr["open_dn"] * s) - expr["lip"] * s)
    img = img + (dark - img) * mouth

    img = (img - 0.5) * identity["contrast"] + 0.5 + identity["brightness"] + noise
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def draw_faces(labels, seed=0):
    """Draw one face per label; returns uint8 (N, 48, 48) in FER2013's format.

    labels: integer array-like of emotions 0..6 (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad,
    5 Surprise, 6 Neutral). Deterministic in `seed`; face i's identity, expression jitter and
    noise depend only on (seed, i, N), never on the labels.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}, got "
                         f"{labels.min()}..{labels.max()}")
    n = labels.size
    rng = np.random.default_rng(seed)

    def u(lo, hi):
        return rng.uniform(lo, hi, n).astype(np.float32)

    identity = {
        "cx": 23.5 + u(-2.5, 2.5), "cy": 24.0 + u(-2.5, 2.5), "scale": u(0.9, 1.1),
        "aspect": u(0.93, 1.07), "gaze": u(-0.6, 0.6),
        "bg": u(0.05, 0.45), "skin": u(0.55, 0.85),
        "contrast": u(0.8, 1.2), "brightness": u(-0.08, 0.08),
        "tilt_sign": np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32),
        "noise_sigma": u(0.01, 0.04),
    }
    jitter = {name: u(0.85, 1.15) for name in _COLUMNS}
    jitter["brow_out"] = jitter["brow_in"]    # one factor for both ends keeps level brows level
    noise_seed = rng.integers(2**63)

    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    noise_rng = np.random.default_rng(noise_seed)
    for start in range(0, n, _CHUNK):
        block = slice(start, min(start + _CHUNK, n))
        noise = noise_rng.standard_normal((block.stop - block.start, IMAGE_SIZE, IMAGE_SIZE),
                                          dtype=np.float32)
        noise *= identity["noise_sigma"][block, None, None]
        images[block] = _draw_block(
            labels[block],
            {k: v[block, None, None] for k, v in identity.items()},
            {k: v[block, None, None] for k, v in jitter.items()},
            noise)
    return images


def make_synthetic(n_per_class, seed=0):
    """`n_per_class` faces of each of the 7 emotions, shuffled (seeded).

    Returns (images uint8 (7 * n_per_class, 48, 48), labels int64 (7 * n_per_class,)).
    """
    labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int64), int(n_per_class))
    labels = np.random.default_rng([seed, 1]).permutation(labels)
    return draw_faces(labels, seed=seed), labels


def write_synthetic_csv(path, train_per_class=64, test_per_class=16, seed=0):
    """Write a FER2013 CSV (Training and PublicTest rows; gzip when `path` ends in .gz).

    The two splits come from different seeds (`seed` and `seed + 1`), so test faces are unseen
    identities. Returns the path written.
    """
    return write_fer2013_csv(path, {
        "Training": make_synthetic(train_per_class, seed=seed),
        "PublicTest": make_synthetic(test_per_class, seed=seed + 1),
    })


# The judge: a tiny configuration of classifier.py's network. Seed 1000 keeps its training faces
# apart from the low seeds tests draw their data from.
JUDGE_ARCHITECTURE = dict(width=8, num_blocks=3, dense_units=32, dropout=0.1, augment=False,
                          head="average")


def train_judge(path, n_per_class=200, epochs=6, seed=1000):
    """Train the synthetic-faces judge and save it atomically to `path` (.keras); returns the path.

    It labels faces of other seeds (unseen identities) almost perfectly; ~20 s on CPU (TF), ~30 s (JAX).
    """
    import classifier  # classifier -> data_loader only; imported here so drawing needs no Keras

    images, labels = make_synthetic(n_per_class, seed=seed)
    model, _ = classifier.train_classifier(
        images, labels, model=classifier.build_classifier(**JUDGE_ARCHITECTURE), epochs=epochs,
        batch_size=32, learning_rate=3e-3, seed=seed, verbose=0)
    return classifier.save_classifier(model, pathlib.Path(path))
