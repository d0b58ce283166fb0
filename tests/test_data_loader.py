import gzip
import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

import data_loader as dl
from data_loader import DataError

rng = np.random.default_rng(0)


def faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def write_csv(path, rows, header="emotion,pixels,Usage"):
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return path


def pixel_string(values=None):
    values = np.arange(2304) % 256 if values is None else values
    return " ".join(map(str, values))


GOOD_ROW = f"0,{pixel_string()},Training"


# ------------------------------------------------------------------------------------------
# Reading valid data
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_round_trip_keeps_every_pixel_label_and_split(tmp_path, suffix):
    train, test = faces(10, 1), faces(4, 2)
    train_labels, test_labels = np.arange(10) % 7, np.array([6, 5, 4, 3])
    path = dl.write_fer2013_csv(tmp_path / f"fer{suffix}",
                                {"Training": (train, train_labels), "PublicTest": (test, test_labels)})
    data = dl.load_fer2013(path, cache=False)
    assert list(data.splits) == ["Training", "PublicTest"]  # PrivateTest absent is fine
    np.testing.assert_array_equal(data.split("Training").images, train)
    np.testing.assert_array_equal(data.split("Training").labels, train_labels)
    np.testing.assert_array_equal(data.split("PublicTest").images, test)
    assert data.split("Training").images.dtype == np.uint8


def test_parser_handles_every_value_width_and_extra_spaces(tmp_path):
    values = np.resize(np.array([0, 7, 10, 99, 100, 255, 9, 200]), 2304)
    text = "  ".join(map(str, values))  # double spaces, as hand-edited files have
    data = dl.load_fer2013(write_csv(tmp_path / "f.csv", [f"3,{text} ,PublicTest"]), cache=False)
    np.testing.assert_array_equal(data.split("PublicTest").images.ravel(), values)


def test_many_chunks_keep_row_order(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CSV_ROWS_PER_CHUNK", 3)
    images, labels = faces(11, 3), np.arange(11) % 7
    path = dl.write_fer2013_csv(tmp_path / "f.csv", {"Training": (images, labels)})
    data = dl.load_fer2013(path, cache=False)
    np.testing.assert_array_equal(data.split("Training").images, images)
    np.testing.assert_array_equal(data.split("Training").labels, labels)


def make_image_folder(root, per_class=2, names=None, size=48):
    names = names or [e.lower() for e in dl.EMOTIONS]
    for split_dir in ("train", "test"):
        for label, name in enumerate(names):
            folder = root / split_dir / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                value = label * 30 + i
                suffix = ".png" if i % 2 else ".jpg"
                Image.fromarray(np.full((size, size), value, np.uint8)).save(folder / f"{i}{suffix}")
    return root


def test_image_folder_release_is_read_with_case_insensitive_emotions(tmp_path):
    names = ["ANGRY", "Disgust", "fear", "Happy", "sad", "Surprise", "neutral"]
    root = make_image_folder(tmp_path / "fer", names=names)
    (root / "train" / "Happy" / "notes.txt").write_text("not an image: skipped")
    data = dl.load_fer2013(root, cache=False)
    assert set(data.splits) == {"Training", "PublicTest"}
    train = data.split("Training")
    np.testing.assert_array_equal(np.bincount(train.labels), [2] * 7)
    # Each image is flat grey with value label*30 + i (JPEG keeps flat images exact).
    np.testing.assert_array_equal(train.images[:, 0, 0] // 30, train.labels)


# ------------------------------------------------------------------------------------------
# Malformed input: one line naming the file and the line / image
# ------------------------------------------------------------------------------------------

MALFORMED_CSV = {
    "empty file": ("", "file is empty"),
    "header only": ("emotion,pixels,Usage\n", "header only, no rows"),
    "renamed column": ("emotion,pixel,Usage\n" + GOOD_ROW + "\n", "missing column(s) pixels; found emotion,pixel,Usage"),
    "missing Usage column": ("emotion,pixels\n0," + pixel_string() + "\n", "missing column(s) Usage"),
    "too few values": (None, ["0," + pixel_string(np.zeros(2303, int)) + ",Training"], "line 3: pixels has 2303 values, expected exactly 2304"),
    "too many values": (None, ["0," + pixel_string(np.zeros(2305, int)) + ",Training"], "line 3: pixels has 2305 values"),
    "non-integer value": (None, ["0," + pixel_string().replace(" 5 ", " 5.5 ", 1) + ",Training"], "line 3: pixels must be 2304 integers"),
    "letter in pixels": (None, ["0,12a " + pixel_string(np.zeros(2303, int)) + ",Training"], "line 3: pixels must be 2304 integers"),
    "value 256": (None, ["0," + pixel_string(np.full(2304, 256)) + ",Training"], "line 3: pixels has a value outside 0..255"),
    "value 1000": (None, ["0," + pixel_string(np.full(2304, 1000)) + ",Training"], "line 3: pixels has a value outside 0..255"),
    "negative value": (None, ["0," + pixel_string(np.full(2304, -1)) + ",Training"], "line 3: pixels has a value outside 0..255"),
    "empty pixels": (None, ["0,,Training"], "line 3: pixels has 0 values"),
    "label 7": (None, ["7," + pixel_string() + ",Training"], "line 3: emotion '7' is not a label 0..6"),
    "label not a number": (None, ["happy," + pixel_string() + ",Training"], "line 3: emotion 'happy' is not a label"),
    "label 2.5": (None, ["2.5," + pixel_string() + ",Training"], "line 3: emotion '2.5' is not a label"),
    "unknown Usage": (None, ["0," + pixel_string() + ",Validation"], "line 3: unknown Usage 'Validation'"),
    "extra field": (None, ["0," + pixel_string() + ",Training,oops"], "Expected 3 fields in line 3, saw 4"),
    "extra field on every row": ("emotion,pixels,Usage\n0,1 2,Training,oops\n", "more fields than the header"),
}


@pytest.mark.parametrize("case", MALFORMED_CSV, ids=list(MALFORMED_CSV))
def test_malformed_csv_gives_one_line_error_naming_file_and_line(tmp_path, case):
    spec = MALFORMED_CSV[case]
    path = tmp_path / "bad.csv"
    if spec[0] is not None:
        path.write_text(spec[0])
    else:
        write_csv(path, [GOOD_ROW] + spec[1])  # the bad row is line 3
    with pytest.raises(DataError) as err:
        dl.load_fer2013(path, cache=False)
    message = str(err.value)
    assert str(path) in message and spec[-1] in message
    assert "\n" not in message


def test_bad_row_is_found_in_a_later_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CSV_ROWS_PER_CHUNK", 2)
    bad = "0," + pixel_string(np.zeros(2303, int)) + ",Training"
    path = write_csv(tmp_path / "bad.csv", [GOOD_ROW] * 5 + [bad])
    with pytest.raises(DataError, match="line 7: pixels has 2303 values"):
        dl.load_fer2013(path, cache=False)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "fer.csv.gz"
    path.write_bytes(gzip.compress(("emotion,pixels,Usage\n" + GOOD_ROW + "\n").encode())[:-20])
    with pytest.raises(DataError, match=f"{path}: damaged gzip file"):
        dl.load_fer2013(path, cache=False)


def test_missing_file_says_how_to_get_fer2013(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file or folder; get fer2013\.csv from Kaggle"):
        dl.load_fer2013(tmp_path / "nope.csv")


def test_default_path_missing_names_it_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dl, "REPO_ROOT", tmp_path)
    with pytest.raises(DataError, match=r"datasets/fer2013\.csv: FER2013 not found; get fer2013\.csv"):
        dl.resolve_data_path()


def test_default_path_finds_the_gzipped_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dl, "REPO_ROOT", tmp_path)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "fer2013.csv.gz").write_bytes(b"")
    assert dl.resolve_data_path().name == "fer2013.csv.gz"


def test_absent_split_is_named(tmp_path):
    path = write_csv(tmp_path / "f.csv", [GOOD_ROW])
    with pytest.raises(DataError, match=r"f\.csv: split 'PrivateTest' is absent \(present: Training\)"):
        dl.load_fer2013(path, cache=False).split("PrivateTest")


def test_unreadable_image_is_named(tmp_path):
    root = make_image_folder(tmp_path / "fer", per_class=1)
    broken = root / "test" / "sad" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"{broken}: unreadable image"):
        dl.load_fer2013(root, cache=False)


def test_wrong_size_image_is_named(tmp_path):
    root = make_image_folder(tmp_path / "fer", per_class=1)
    big = root / "train" / "fear" / "big.png"
    Image.fromarray(np.zeros((64, 50, 3), np.uint8)).save(big)
    with pytest.raises(DataError, match=f"{big}: image is 50x64, FER2013 faces are 48x48"):
        dl.load_fer2013(root, cache=False)


def test_unknown_emotion_folder_is_named(tmp_path):
    root = make_image_folder(tmp_path / "fer", per_class=1)
    (root / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match="contempt: unknown emotion folder"):
        dl.load_fer2013(root, cache=False)


def test_folder_without_splits_is_named(tmp_path):
    with pytest.raises(DataError, match="needs train/ and/or test/"):
        dl.load_fer2013(tmp_path, cache=False)


def test_exported_npz_round_trips_through_the_command_line_and_load(tmp_path, capsys):
    train, test = faces(9, 4), faces(3, 5)
    source = dl.write_fer2013_csv(tmp_path / "f.csv", {"Training": (train, np.arange(9) % 7),
                                                      "PrivateTest": (test, np.array([1, 2, 3]))})
    assert dl.main(["--export", str(tmp_path / "fer.npz"), "--data", str(source)]) == 0
    assert "Training 9, PrivateTest 3 faces" in capsys.readouterr().out
    exported, original = dl.load_fer2013(tmp_path / "fer.npz"), dl.load_fer2013(source, cache=False)
    assert list(exported.splits) == list(original.splits) and exported.source == str(tmp_path / "fer.npz")
    for name, split in original.splits.items():
        np.testing.assert_array_equal(exported.split(name).images, split.images)
        np.testing.assert_array_equal(exported.split(name).labels, split.labels)


BAD_NPZ = {
    "not a zip": (None, "not a zip archive"),
    "no split names": ({"Training_images": faces(2)}, "no split_names"),
    "unknown split": ({"split_names": np.array(["Train"])}, "unknown split 'Train'"),
    "float images": ({"split_names": np.array(["Training"]), "Training_images": faces(2).astype(np.float32),
                      "Training_labels": np.array([0, 1])}, "expected uint8 (N, 48, 48)"),
    "label 7": ({"split_names": np.array(["Training"]), "Training_images": faces(2),
                 "Training_labels": np.array([0, 7])}, "2 integer labels in 0..6"),
}


@pytest.mark.parametrize("case", BAD_NPZ, ids=list(BAD_NPZ))
def test_bad_npz_is_one_error_line_naming_the_file(tmp_path, case, capsys):
    arrays, message = BAD_NPZ[case]
    path = tmp_path / "bad.npz"
    if arrays is None:
        path.write_text("emotion,pixels,Usage\n")
    else:
        np.savez(path, **arrays)
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: not a FER2013 .npz.*{re.escape(message)}"):
        dl.load_fer2013(path)
    assert dl.main(["--export", str(tmp_path / "out.npz"), "--data", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and not (tmp_path / "out.npz").exists()


# ------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------

def test_cache_is_used_then_rebuilt_when_the_source_changes(tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    path = dl.write_fer2013_csv(tmp_path / "f.csv", {"Training": (faces(3, 1), np.array([0, 1, 2]))})
    first = dl.load_fer2013(path, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.npz"))) == 1

    def no_parsing(source):
        raise AssertionError("parsed although cached")

    real_parse = dl._parse_source
    monkeypatch.setattr(dl, "_parse_source", no_parsing)
    cached = dl.load_fer2013(path, cache_dir=cache_dir)
    np.testing.assert_array_equal(cached.split("Training").images, first.split("Training").images)

    monkeypatch.setattr(dl, "_parse_source", real_parse)
    dl.write_fer2013_csv(path, {"Training": (faces(4, 2), np.array([3, 4, 5, 6]))})
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    changed = dl.load_fer2013(path, cache_dir=cache_dir)
    np.testing.assert_array_equal(changed.split("Training").labels, [3, 4, 5, 6])
    assert len(list(cache_dir.glob("*.npz"))) == 1, "the stale cache should be replaced"


def test_damaged_cache_is_rebuilt(tmp_path):
    cache_dir = tmp_path / "cache"
    path = dl.write_fer2013_csv(tmp_path / "f.csv", {"Training": (faces(2), np.array([0, 1]))})
    dl.load_fer2013(path, cache_dir=cache_dir)
    (cache_file,) = cache_dir.glob("*.npz")
    cache_file.write_bytes(b"truncated")
    np.testing.assert_array_equal(dl.load_fer2013(path, cache_dir=cache_dir).split("Training").labels, [0, 1])


# ------------------------------------------------------------------------------------------
# Batches for GAN training
# ------------------------------------------------------------------------------------------

def make_split(n=70, seed=0):
    labels = np.arange(n) % 7
    return dl.Split("Training", faces(n, seed), labels.astype(np.int64))


def test_epoch_is_a_seeded_permutation_without_replacement():
    split = make_split(70)
    batches = dl.Batches(split, batch_size=7, seed=3, flip=False)
    order = batches.order(0)
    assert sorted(order) == list(range(70))
    again = dl.Batches(split, batch_size=7, seed=3, flip=False)
    np.testing.assert_array_equal(order, again.order(0))
    assert not np.array_equal(order, batches.order(1))
    x, y = next(batches.epoch(0))
    assert x.shape == (7, 48, 48, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert -1.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(dl.to_uint8(x), split.images[order[:7]])
    assert batches.steps_per_epoch == 10


def test_flip_is_seeded_and_flips_about_half():
    split = make_split(700)
    batches = dl.Batches(split, batch_size=700, seed=1, flip=True)
    x, _ = next(batches.epoch(0))
    original = split.images[batches.order(0)]
    flipped = np.all(dl.to_uint8(x) == original[:, :, ::-1], axis=(1, 2))
    kept = np.all(dl.to_uint8(x) == original, axis=(1, 2))
    assert np.all(flipped | kept) and 0.4 < flipped.mean() < 0.6
    x_again, _ = next(dl.Batches(split, batch_size=700, seed=1, flip=True).epoch(0))
    np.testing.assert_array_equal(x, x_again)


def test_balanced_sampling_gives_each_emotion_an_equal_share():
    labels = np.r_[np.zeros(600), np.ones(10), np.full(90, 3)].astype(np.int64)
    split = dl.Split("Training", np.zeros((700, 48, 48), np.uint8), labels)
    order = dl.Batches(split, batch_size=10, seed=0, balanced=True).order(0)
    counts = np.bincount(labels[order], minlength=7)
    assert len(order) == 699 and counts[0] == counts[1] == counts[3] == 233
    rare = order[labels[order] == 1]
    # the 10 rare faces are all used before any repeats: each appears 23 or 24 times
    assert set(np.bincount(rare)[np.unique(rare)]) == {23, 24}


def test_too_small_split_for_a_batch_is_named():
    with pytest.raises(DataError, match="Training: 7 faces, fewer than one batch of 64"):
        dl.Batches(make_split(7), batch_size=64)


def test_fixed_faces_are_one_per_emotion_and_seeded():
    split = make_split(70)
    x, labels = dl.fixed_faces(split, seed=5)
    np.testing.assert_array_equal(labels, np.arange(7))
    assert x.shape == (7, 48, 48, 1)
    np.testing.assert_array_equal(x, dl.fixed_faces(split, seed=5)[0])
    for label, face in enumerate(dl.to_uint8(x)):
        matches = np.all(split.images == face, axis=(1, 2))
        assert matches.any() and set(split.labels[matches]) == {label}


def test_fixed_faces_need_every_emotion():
    split = dl.Split("PublicTest", faces(6), np.arange(6, dtype=np.int64))
    with pytest.raises(DataError, match="PublicTest: no Neutral face"):
        dl.fixed_faces(split)


def test_conversions():
    images = faces(5)
    np.testing.assert_array_equal(dl.to_uint8(dl.to_float(images)), images)
    assert dl.to_uint8(np.array([[[-3.0]]]))[0, 0, 0] == 0
    np.testing.assert_array_equal(dl.one_hot([2, 0]), np.eye(7, dtype=np.float32)[[2, 0]])


def test_of_class_selects_one_emotion():
    happy = make_split(70).of_class(3)
    assert len(happy) == 10 and set(happy.labels) == {3} and happy.name == "Training/Happy"


# ------------------------------------------------------------------------------------------
# The development copy of FER2013 (only where ../shared exists)
# ------------------------------------------------------------------------------------------

def test_shared_fer2013_counts_match_its_readme(shared_fer2013, tmp_path):
    data = dl.load_fer2013(shared_fer2013, cache_dir=tmp_path)
    assert list(data.splits) == ["Training", "PublicTest"]
    expected = {"Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
                "PublicTest": [467, 56, 496, 895, 653, 415, 607]}
    for name, counts in expected.items():
        split = data.split(name)
        assert len(split) == sum(counts)
        np.testing.assert_array_equal(np.bincount(split.labels, minlength=7), counts)
        assert split.images.shape == (sum(counts), 48, 48) and split.images.dtype == np.uint8
