"""FER2013 data layer: read, validate, cache and batch 48x48 grey faces with 7 emotion labels.

Three sources are accepted, detected on their own:
- the Kaggle CSV `fer2013.csv` (columns `emotion,pixels,Usage`; plain or `.gz`),
- the image-folder release: `train/<emotion>/*.jpg` and `test/<emotion>/*.jpg` (PNG too; emotion folder
  names case-insensitive). `train/` becomes the Training split and `test/` the PublicTest split; and
- this loader's own compact `.npz` (the format of its cache; all of FER2013 is ~68 MB), written by
  `python data_loader.py --export fer2013.npz [--data SOURCE]`: one file to copy to a GPU machine.

Everything is validated up front with a one-line `DataError` naming the file and the line or image;
images must already be 48x48 after grey conversion (we do not resize: FER2013 is 48x48, and a silent
resize would hide a wrong dataset). Parsed arrays stay uint8 (all of FER2013 is 83 MB) and are cached
as a compressed `.npz` keyed by the source's path, size and mtime, so a second load takes well under a
second.
"""

from __future__ import annotations

import hashlib
import argparse
import os
import pathlib
import sys
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from isal import igzip

import atomic
from lazy_import import lazy_import
from repo import REPO_ROOT

# OpenCV (through face_detection) loads when sample-grid faces are first picked, not with the data layer.
face_detection = lazy_import("face_detection")

EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
NUM_CLASSES = len(EMOTIONS)
IMAGE_SIZE = 48
PIXELS_PER_FACE = IMAGE_SIZE * IMAGE_SIZE
SPLITS = ("Training", "PublicTest", "PrivateTest")
CSV_COLUMNS = ("emotion", "pixels", "Usage")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FOLDER_SPLITS = {"train": "Training", "test": "PublicTest"}

DEFAULT_CANDIDATES = ("datasets/fer2013.csv", "datasets/fer2013.csv.gz", "datasets/fer2013",
                      "datasets/fer2013.npz")
NPZ_SUFFIX = ".npz"
DEFAULT_CACHE_DIR = REPO_ROOT / "datasets" / "cache"
HOW_TO_GET = (
    "get fer2013.csv from Kaggle's 'Challenges in Representation Learning: Facial Expression "
    "Recognition Challenge' (or the image-folder release with train/<emotion>/*.jpg) and put it at "
    "datasets/fer2013.csv, or pass --data PATH"
)
CSV_ROWS_PER_CHUNK = 1024  # ~9 MB of text per chunk: the parser's temporaries stay in cache


class DataError(ValueError):
    """Bad or missing input data; the message is one line naming the file (and line or image)."""


@dataclass
class Split:
    name: str
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64 in 0..6
    source: str = ""    # the data file or folder, named in error messages

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def where(self) -> str:
        """"<source>: <name>", what an error message about this split starts with."""
        return f"{self.source}: {self.name}" if self.source else self.name

    def of_class(self, label: int) -> "Split":
        mask = self.labels == label
        return Split(f"{self.name}/{EMOTIONS[label]}", self.images[mask], self.labels[mask], self.source)


@dataclass
class FER2013:
    source: str
    splits: dict[str, Split]

    def __post_init__(self):
        for split in self.splits.values():
            split.source = self.source

    def split(self, name: str) -> Split:
        if name not in self.splits:
            present = ", ".join(self.splits) or "none"
            raise DataError(f"{self.source}: split {name!r} is absent (present: {present})")
        return self.splits[name]


# ---------------------------------------------------------------------------------------------
# Finding and loading a source
# ---------------------------------------------------------------------------------------------

def resolve_data_path(path: str | os.PathLike | None = None) -> pathlib.Path:
    """The data source to read: `path` if given, else the first of datasets/fer2013{.csv,.csv.gz,/}."""
    if path is not None:
        resolved = pathlib.Path(path)
        if not resolved.exists():
            raise DataError(f"{resolved}: no such file or folder; {HOW_TO_GET}")
        return resolved
    for candidate in DEFAULT_CANDIDATES:
        for base in (pathlib.Path.cwd(), REPO_ROOT):
            if (base / candidate).exists():
                return base / candidate
    raise DataError(f"{DEFAULT_CANDIDATES[0]}: FER2013 not found; {HOW_TO_GET}")


def load_fer2013(path: str | os.PathLike | None = None, cache: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> FER2013:
    """Load FER2013 from a CSV or an image folder, through the `.npz` cache unless `cache=False`.

    The cache lives in `cache_dir`, else $CCYCLEGAN_CACHE_DIR, else datasets/cache/."""
    source = resolve_data_path(path)
    if not cache or source.suffix.lower() == NPZ_SUFFIX:  # an .npz is as quick to read as its cache
        return _parse_source(source)
    cache_dir = cache_dir or os.environ.get("CCYCLEGAN_CACHE_DIR") or DEFAULT_CACHE_DIR
    cache_file = _cache_file(source, pathlib.Path(cache_dir))
    data = atomic.read_cache(cache_file, lambda path: _read_cache(path, source))
    if data is None:
        data = _parse_source(source)
        _write_cache(cache_file, data)
    return data


def _parse_source(source: pathlib.Path) -> FER2013:
    if source.is_dir():
        splits = _read_image_folder(source)
    else:
        splits = _read_npz(source) if source.suffix.lower() == NPZ_SUFFIX else _read_csv(source)
    return FER2013(str(source), splits)


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

def _read_csv(path: pathlib.Path) -> dict[str, Split]:
    try:
        return _parse_csv(path)
    except DataError:
        # A damaged gzip inflates to garbage rows before its checksum fails at the end: blame the file.
        damage = _gzip_damage(path)
        if damage:
            raise DataError(f"{path}: damaged gzip file ({damage}); copy or download it again") from None
        raise


def _gzip_damage(path: pathlib.Path) -> str | None:
    """Why `path`, a gzip file, does not inflate whole; None when it does or is not gzip."""
    if not _is_gzip(path):
        return None
    try:
        with igzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as err:
        return _first_line(err)
    return None


def _parse_csv(path: pathlib.Path) -> dict[str, Split]:
    """Stream the CSV in chunks; pixel parsing runs in worker threads while pandas reads on."""
    images, labels, usage = [], [], []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        first_line = 2  # line 1 is the header
        for frame in _csv_chunks(path):
            line_numbers = np.arange(len(frame)) + first_line
            first_line += len(frame)
            labels.append(_parse_labels(frame["emotion"], path, line_numbers))
            usage.append(_parse_usage(frame["Usage"], path, line_numbers))
            images.append(pool.submit(_parse_pixels, frame["pixels"].tolist(), path, line_numbers))
        images = [future.result() for future in images]
    if not labels:
        raise DataError(f"{path}: header only, no rows")
    images, labels, usage = np.concatenate(images), np.concatenate(labels), np.concatenate(usage)
    return {name: Split(name, images[usage == name], labels[usage == name])
            for name in SPLITS if (usage == name).any()}


def _csv_chunks(path: pathlib.Path) -> Iterator[pd.DataFrame]:
    try:
        with _open_maybe_gzip(path) as stream:
            yield from _checked_chunks(path, stream)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty; expected a FER2013 CSV with columns emotion,pixels,Usage") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: not a readable CSV ({_first_line(err)})") from None
    except (UnicodeDecodeError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a readable CSV or .csv.gz ({_first_line(err)})") from None


def _is_gzip(path: pathlib.Path) -> bool:
    with open(path, "rb") as probe:
        return probe.read(2) == b"\x1f\x8b"


def _open_maybe_gzip(path: pathlib.Path):
    """A binary stream of the file's text; gzip (detected by its magic bytes) is inflated with ISA-L,
    2-3x faster than zlib: decompression is most of a cold load."""
    return igzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _checked_chunks(path: pathlib.Path, stream) -> Iterator[pd.DataFrame]:
    for frame in pd.read_csv(stream, dtype=str, keep_default_na=False, chunksize=CSV_ROWS_PER_CHUNK):
        missing = [c for c in CSV_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {','.join(missing)}; found "
                            f"{','.join(map(str, frame.columns))}; expected emotion,pixels,Usage")
        if not isinstance(frame.index, pd.RangeIndex):  # pandas' reading of rows longer than the header
            raise DataError(f"{path}: rows have more fields than the header emotion,pixels,Usage")
        if not frame.empty:
            yield frame


def _parse_labels(column: pd.Series, path: pathlib.Path, line_numbers: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= NUM_CLASSES)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{path}: line {line_numbers[row]}: emotion {column.iloc[row]!r} is not a label "
                        f"0..{NUM_CLASSES - 1}")
    return values.astype(np.int64)


def _parse_usage(column: pd.Series, path: pathlib.Path, line_numbers: np.ndarray) -> np.ndarray:
    usage = column.str.strip().to_numpy(dtype=object)
    unknown = ~np.isin(usage, SPLITS)
    if unknown.any():
        row = int(np.argmax(unknown))
        raise DataError(f"{path}: line {line_numbers[row]}: unknown Usage {usage[row]!r} "
                        f"(expected one of {', '.join(SPLITS)})")
    return usage


def _parse_pixels(pixel_strings: list[str], path: pathlib.Path, line_numbers: np.ndarray) -> np.ndarray:
    """Space-separated pixel strings -> (N, 48, 48) uint8, parsed on the raw bytes with numpy.

    A value is read off the (at most 3) digits that end each token, so no per-row Python work
    is done; every check that fails names the CSV line.
    """
    text = np.frombuffer(("\n".join(pixel_strings) + "\n").encode("ascii", "replace"), np.uint8)
    newlines = np.flatnonzero(text == ord("\n"))
    is_digit = (text - np.uint8(ord("0"))) < 10

    def fail(char_index: int, reason: str):
        row = int(np.searchsorted(newlines, char_index))
        shown = pixel_strings[row] if len(pixel_strings[row]) <= 40 else pixel_strings[row][:37] + "..."
        raise DataError(f"{path}: line {line_numbers[row]}: pixels {reason} (got {shown!r})")

    separators = sum(np.count_nonzero(text == ord(c)) for c in " \t\n")
    if separators + np.count_nonzero(is_digit) != len(text):
        index = int(np.argmax(~is_digit & (text != ord(" ")) & (text != ord("\t")) & (text != ord("\n"))))
        if text[index] == ord("-") and is_digit[index + 1]:
            fail(index, "has a value outside 0..255")
        fail(index, f"must be {PIXELS_PER_FACE} integers separated by spaces")

    token_ends = np.flatnonzero(is_digit[:-1] & ~is_digit[1:])  # the text ends in a newline
    tokens_per_row = np.diff(np.r_[0, np.searchsorted(token_ends, newlines)])
    wrong_count = tokens_per_row != PIXELS_PER_FACE
    if wrong_count.any():
        row = int(np.argmax(wrong_count))
        fail(int(newlines[row]), f"has {tokens_per_row[row]} values, expected exactly {PIXELS_PER_FACE}")

    # Index -1 and -2 wrap to the final newline and a digit before it, but `has_tens` is then False.
    has_tens = is_digit[token_ends - 1]
    has_hundreds = has_tens & is_digit[token_ends - 2]
    too_long = has_hundreds & is_digit[token_ends - 3]
    if too_long.any():
        fail(int(token_ends[np.argmax(too_long)]), "has a value outside 0..255")

    def digit(offset: int) -> np.ndarray:  # the digit `offset` places left of each token's end
        return text[token_ends - offset].astype(np.uint16) - ord("0")

    values = digit(0) + has_tens * (10 * digit(1)) + has_hundreds * (100 * digit(2))
    if (values > 255).any():
        fail(int(token_ends[np.argmax(values > 255)]), "has a value outside 0..255")
    return values.astype(np.uint8).reshape(len(pixel_strings), IMAGE_SIZE, IMAGE_SIZE)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def write_fer2013_csv(path: str | os.PathLike, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> pathlib.Path:
    """Write faces in the FER2013 CSV schema (gzip when `path` ends in .gz), atomically."""
    path = pathlib.Path(path)
    frames = []
    for usage, (images, labels) in splits.items():
        flat = np.asarray(images, np.uint8).reshape(len(images), PIXELS_PER_FACE)
        frames.append(pd.DataFrame({
            "emotion": np.asarray(labels, np.int64),
            "pixels": [" ".join(map(str, row)) for row in flat.tolist()],
            "Usage": usage,
        }))
    with atomic.replacing(path) as temporary:
        pd.concat(frames, ignore_index=True).to_csv(
            temporary, index=False, compression="gzip" if path.suffix == ".gz" else None)
    return path


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------

def grey_pixels(image) -> np.ndarray:
    """A PIL image of any mode as uint8 grey (H, W).

    16-bit grey (PNG's I;16 modes, or I) is scaled to 8 bits by its top byte: Pillow's
    convert("L") would clip it, turning almost every pixel white.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.int64)  # I;16B arrives big-endian; int64 reads every variant
        return (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
    if image.mode == "F":
        raise ValueError("32-bit float images are not supported; save it as 8- or 16-bit grey")
    return np.asarray(image.convert("L"))


def image_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """The .png/.jpg files of a folder, sorted; hidden files (macOS' AppleDouble `._x.png`) are skipped."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def read_face(path: pathlib.Path) -> np.ndarray:
    """One 48x48 face image (PNG/JPG, any colour mode, 8 or 16 bits) as uint8 grey; DataError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = grey_pixels(image)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({_first_line(err)})") from None
    if grey.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: image is {grey.shape[1]}x{grey.shape[0]}, FER2013 faces "
                        f"are {IMAGE_SIZE}x{IMAGE_SIZE} (crop and resize it first)")
    return grey


def _read_image_folder(root: pathlib.Path) -> dict[str, Split]:
    split_dirs = {FOLDER_SPLITS[d.name.lower()]: d for d in sorted(root.iterdir())
                  if d.is_dir() and d.name.lower() in FOLDER_SPLITS}
    if not split_dirs:
        raise DataError(f"{root}: a FER2013 folder needs train/ and/or test/ subfolders of emotion folders")
    class_of = {name.lower(): label for label, name in enumerate(EMOTIONS)}
    splits = {}
    for split_name, split_dir in split_dirs.items():
        images, labels = [], []
        for emotion_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            if emotion_dir.name.lower() not in class_of:
                raise DataError(f"{emotion_dir}: unknown emotion folder (expected one of "
                                f"{', '.join(e.lower() for e in EMOTIONS)})")
            for image_path in image_files(emotion_dir):
                images.append(read_face(image_path))
                labels.append(class_of[emotion_dir.name.lower()])
        if not images:
            raise DataError(f"{split_dir}: no .png/.jpg images in its emotion folders")
        splits[split_name] = Split(split_name, np.stack(images), np.asarray(labels, np.int64))
    return {name: splits[name] for name in SPLITS if name in splits}


# ---------------------------------------------------------------------------------------------
# The loader's .npz: its cache, and a compact copy of a source (--export)
# ---------------------------------------------------------------------------------------------

def _read_npz(path: pathlib.Path) -> dict[str, Split]:
    """Splits of an .npz in the loader's format (split_names, <split>_images uint8 (N, 48, 48),
    <split>_labels (N,) in 0..6), checked; DataError naming the file and what is wrong."""
    def bad(reason: str):
        return DataError(f"{path}: not a FER2013 .npz of data_loader.py ({reason}); write one with "
                         "python data_loader.py --export FILE.npz")
    if not zipfile.is_zipfile(path):  # else numpy takes it for a pickle and says so
        raise bad("not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise bad(_first_line(err)) from None
    if "split_names" not in arrays:
        raise bad("no split_names")
    splits = {}
    for name in map(str, np.atleast_1d(arrays["split_names"])):
        images, labels = arrays.get(f"{name}_images"), arrays.get(f"{name}_labels")
        if name not in SPLITS:
            raise bad(f"unknown split {name!r}")
        if images is None or labels is None:
            raise bad(f"{name}_images or {name}_labels missing")
        if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise bad(f"{name}_images is {images.dtype} {images.shape}, expected uint8 (N, 48, 48)")
        if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu" or (
                len(labels) and not 0 <= labels.min() <= labels.max() < NUM_CLASSES):
            raise bad(f"{name}_labels must be {len(images)} integer labels in 0..{NUM_CLASSES - 1}")
        splits[name] = Split(name, images, labels.astype(np.int64))
    if not splits:
        raise bad("no splits")
    return splits


def _npz_arrays(data: FER2013) -> dict[str, np.ndarray]:
    arrays = {"split_names": np.array(list(data.splits))}
    for name, split in data.splits.items():
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_labels"] = split.labels
    return arrays


def export_npz(data: FER2013, path: str | os.PathLike) -> pathlib.Path:
    """Write `data` as the loader's compressed .npz, atomically; --data reads it back."""
    path = pathlib.Path(path)
    if path.suffix.lower() != NPZ_SUFFIX:
        raise DataError(f"{path}: the export's name must end in {NPZ_SUFFIX}")
    with atomic.replacing(path) as temporary:
        np.savez_compressed(temporary, **_npz_arrays(data))
    return path


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------

def _source_identity(source: pathlib.Path) -> str:
    """Path + size + mtime of the file, or of every file under a folder."""
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    parts = [str(source.resolve())]
    for file in files:
        stat = file.stat()
        parts.append(f"{file.relative_to(source) if source.is_dir() else ''}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cache_file(source: pathlib.Path, cache_dir: pathlib.Path) -> pathlib.Path:
    path_key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return cache_dir / f"{source.name}-{path_key}-{_source_identity(source)[:16]}.npz"


def _read_cache(cache_file: pathlib.Path, source: pathlib.Path) -> FER2013:
    return FER2013(str(source), _read_npz(cache_file))


def _write_cache(cache_file: pathlib.Path, data: FER2013) -> None:
    arrays = _npz_arrays(data)
    if not atomic.write_cache(cache_file, lambda temporary: np.savez_compressed(temporary, **arrays)):
        return
    # Caches of older versions of the same source are stale now.
    prefix = cache_file.name.rsplit("-", 1)[0] + "-"
    for stale in cache_file.parent.glob(prefix + "*.npz"):
        if stale != cache_file:
            stale.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Model-side arrays and batching
# ---------------------------------------------------------------------------------------------

def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 48, 48) -> float32 (N, 48, 48, 1) in [-1, 1]."""
    return (np.asarray(images, np.float32)[..., None] / 127.5 - 1.0).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float (N, 48, 48[, 1]) in [-1, 1] -> uint8 (N, 48, 48), clipping out-of-range values."""
    images = np.asarray(images, np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, np.int64)]


class Batches:
    """Epochs of GAN training batches: float32 (B, 48, 48, 1) in [-1, 1] and int32 labels (B,).

    Each epoch is a seeded permutation (every face once, no replacement), so epoch `i` is the same
    whenever it is asked for: a resumed run sees exactly the batches an uninterrupted one would.
    `balanced=True` gives every emotion the same share of an epoch: a class's faces are cycled
    through in fresh permutations, all of them used before any repeats.
    """

    def __init__(self, split: Split, batch_size: int, seed: int = 0, flip: bool = True,
                 balanced: bool = False, drop_remainder: bool = True):
        if batch_size < 1:
            raise DataError(f"{split.where}: batch_size must be positive, got {batch_size}")
        if drop_remainder and len(split) < batch_size:
            raise DataError(f"{split.where}: {len(split)} faces, fewer than one batch of {batch_size}")
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.flip, self.balanced, self.drop_remainder = flip, balanced, drop_remainder
        present = len(np.unique(split.labels))
        # A balanced epoch has the same number of faces of every present emotion.
        self.epoch_length = len(split) // present * present if balanced else len(split)
        n = self.epoch_length
        self.steps_per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)

    def order(self, epoch_index: int) -> np.ndarray:
        """The face indices of epoch `epoch_index`, in batch order."""
        rng = np.random.default_rng([self.seed, epoch_index])
        if not self.balanced:
            return rng.permutation(len(self.split))
        present = np.unique(self.split.labels)
        per_class = self.epoch_length // len(present)
        chosen = []
        for label in present:
            members = np.flatnonzero(self.split.labels == label)
            cycles = -(-per_class // len(members))
            chosen.append(np.concatenate([rng.permutation(members) for _ in range(cycles)])[:per_class])
        return rng.permutation(np.concatenate(chosen))

    def epoch(self, epoch_index: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.order(epoch_index)
        flip_rng = np.random.default_rng([self.seed, epoch_index, 1])
        flips = flip_rng.random(len(order)) < 0.5 if self.flip else np.zeros(len(order), bool)
        for step in range(self.steps_per_epoch):
            batch = slice(step * self.batch_size, (step + 1) * self.batch_size)
            images = self.split.images[order[batch]]
            images = np.where(flips[batch, None, None], images[:, :, ::-1], images)
            yield to_float(images), self.split.labels[order[batch]].astype(np.int32)


def fixed_faces(split: Split, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One face per emotion (row i shows emotion i): the fixed inputs of every sample grid. Per
    emotion, the first face in a seeded order that looks like a clean frontal photograph
    (face_detection.looks_like_photo); the first in that order where none does (synthetic faces)
    or where OpenCV has no face detector."""
    rng = np.random.default_rng(seed)
    indices = []
    for label, emotion in enumerate(EMOTIONS):
        members = rng.permutation(np.flatnonzero(split.labels == label))
        if len(members) == 0:
            raise DataError(f"{split.where}: no {emotion} face to show in sample grids")
        try:
            photos = (i for i in members if face_detection.looks_like_photo(split.images[i]))
            indices.append(next(photos, members[0]))
        except face_detection.DetectorError:
            indices.append(members[0])
    return to_float(split.images[indices]), np.arange(NUM_CLASSES, dtype=np.int32)


def main(argv=None) -> int:
    """`--export FILE.npz`: the source (--data, or datasets/fer2013.*) as one compact .npz."""
    parser = argparse.ArgumentParser(description="Check a FER2013 source and export it as the loader's "
                                     "compact .npz (one file to copy to a GPU machine; --data reads it).")
    parser.add_argument("--export", required=True, metavar="FILE.npz", help="where to write the .npz")
    parser.add_argument("--data", default=None, help="FER2013 CSV (.csv/.csv.gz), image folder or .npz "
                        "(default datasets/fer2013.csv)")
    args = parser.parse_args(argv)
    try:
        data = load_fer2013(args.data)
        path = export_npz(data, args.export)
    except (DataError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): {counts} faces from {data.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
