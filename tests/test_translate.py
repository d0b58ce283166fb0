"""translate.py: photo -> FER2013-framed 48x48 faces -> seven expressions -> PNGs.

A tiny T2 trained for 2 steps stands in for the generator (its translations are noise; these tests
check the plumbing and the crop, not the translations). The real face is Grace Hopper's portrait,
which matplotlib ships; the FER2013 framing test reads ../shared and skips when it is absent.
"""
import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

import data_loader
import synthetic_faces
import translate

REPO = pathlib.Path(__file__).resolve().parents[1]
PORTRAIT = pathlib.Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600 colour


def enlarged_on_canvas(face, factor):
    """A 48x48 face enlarged `factor` times, centred on a canvas twice its size (edges repeated)."""
    size = 48 * factor
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, size // 2, size // 2, size // 2, size // 2, cv2.BORDER_REPLICATE)


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------

def test_no_detect_translates_a_48px_face_into_every_emotion(tiny_generator, tmp_path, capsys):
    face = synthetic_faces.draw_faces([3], seed=5)[0]
    Image.fromarray(face).save(tmp_path / "face.png")
    out, per_emotion = tmp_path / "grid.png", tmp_path / "each"
    assert translate.main([str(tmp_path / "face.png"), "--no_detect", "--generator", str(tiny_generator),
                           "--out", str(out), "--per_emotion", str(per_emotion)]) == 0
    assert "1 face ->" in capsys.readouterr().out

    with Image.open(out) as grid:
        assert grid.format == "PNG" and grid.width > 600 and grid.height > 100
    expected = translate.translate_faces(translate.load_generator(tiny_generator), [face])[0]
    assert np.array_equal(np.asarray(Image.open(per_emotion / "face1_input.png")), face)
    for label, emotion in enumerate(data_loader.EMOTIONS):
        written = np.asarray(Image.open(per_emotion / f"face1_{emotion.lower()}.png"))
        assert written.shape == (48, 48) and np.array_equal(written, expected[label]), emotion
    assert sorted(p.name for p in tmp_path.rglob("*.tmp*")) == []


def test_translate_faces_gives_every_face_in_every_emotion_in_one_call():
    class Recorder:
        calls = 0

        def translate(self, x, targets):
            self.calls += 1
            # face i to emotion t: i/10 + t/100 - 0.5, whatever order the batch is in
            index = np.array([int(np.flatnonzero((face == faces_float).all(axis=(1, 2, 3)))[0]) for face in x])
            return np.broadcast_to((index / 10 + targets / 100 - 0.5)[:, None, None, None], x.shape)

    faces = synthetic_faces.draw_faces([0, 4, 6], seed=1)
    faces_float = data_loader.to_float(faces)
    recorder = Recorder()
    out = translate.translate_faces(recorder, faces)
    assert out.shape == (3, 7, 48, 48) and out.dtype == np.uint8 and recorder.calls == 1
    expected = [[round((i / 10 + t / 100 + 0.5) * 127.5) for t in range(7)] for i in range(3)]
    assert out[:, :, 0, 0].tolist() == expected


def test_cli_finds_the_face_in_a_colour_photo(tiny_generator, tmp_path):
    out, per_emotion = tmp_path / "portrait.png", tmp_path / "each"
    result = subprocess.run([sys.executable, str(REPO / "translate.py"), str(PORTRAIT), "--generator",
                             str(tiny_generator), "--out", str(out), "--per_emotion", str(per_emotion)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"1 face -> {out}" in result.stdout
    assert Image.open(out).format == "PNG" and len(list(per_emotion.glob("face1_*.png"))) == 8
    crop = np.asarray(Image.open(per_emotion / "face1_input.png"))
    assert np.array_equal(crop, translate.find_faces(translate.read_photo(PORTRAIT))[1][0])


def test_all_faces_gives_every_face_largest_first(tiny_generator, tmp_path, capsys):
    portrait = translate.read_photo(PORTRAIT)
    small = cv2.resize(portrait, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    group = np.full((portrait.shape[0], portrait.shape[1] + small.shape[1]), 128, np.uint8)
    group[:, small.shape[1]:] = portrait
    group[:small.shape[0], :small.shape[1]] = small  # the smaller face on the left
    boxes = translate.detect_faces(group)
    assert len(boxes) == 2 and boxes[0][2] > boxes[1][2] and boxes[0][0] > boxes[1][0]
    assert len(translate.find_faces(group)[1]) == 1

    Image.fromarray(group).save(tmp_path / "group.png")
    assert translate.main([str(tmp_path / "group.png"), "--all_faces", "--generator", str(tiny_generator),
                           "--out", str(tmp_path / "grid.png"), "--per_emotion", str(tmp_path / "each")]) == 0
    assert "2 faces ->" in capsys.readouterr().out
    assert len(list((tmp_path / "each").glob("face2_*.png"))) == 8


# ---------------------------------------------------------------------------------------------
# The crop
# ---------------------------------------------------------------------------------------------

def test_crop_face_takes_the_margin_square_and_repeats_edges_outside_the_photo():
    rng = np.random.default_rng(0)
    image = rng.integers(10, 256, (200, 300), dtype=np.uint8)
    exact = translate.crop_face(image, (50, 40, 96, 96), margin=1.0)
    assert np.array_equal(exact, cv2.resize(image[40:136, 50:146], (48, 48), interpolation=cv2.INTER_AREA))
    wide = translate.crop_face(image, (50, 40, 96, 96), margin=1.5)  # 144 px square, same centre
    assert np.array_equal(wide, cv2.resize(image[16:160, 26:170], (48, 48), interpolation=cv2.INTER_AREA))
    corner = translate.crop_face(image, (0, 0, 60, 60), margin=2.0)  # half of it lies outside
    assert corner.shape == (48, 48) and corner.min() >= 10  # edge pixels repeated, no black border


def test_colour_and_grey_arrays_give_the_same_crop():
    bgr = cv2.imread(str(PORTRAIT))
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(translate.find_faces(bgr)[1][0], translate.find_faces(grey)[1][0])
    assert translate.find_faces(np.full((300, 300), 128, np.uint8)) == ([], [])


def test_the_photos_face_fills_the_48px_frame_like_fer2013():
    # Re-detect the face in our own 48x48 crop: its box should be about the whole frame, centred.
    crop = translate.find_faces(translate.read_photo(PORTRAIT))[1][0]
    boxes = translate.detect_faces(enlarged_on_canvas(crop, 4))
    assert len(boxes) == 1
    x, y, side, _ = (np.array(boxes[0]) - [96, 96, 0, 0]) / 4  # in the crop's 48-px units
    assert 0.85 * 48 <= side <= 1.15 * 48
    assert abs(x + side / 2 - 24) <= 0.1 * 48 and abs(y + side / 2 - 24) <= 0.1 * 48


def test_crop_reproduces_fer2013_framing(shared_fer2013):
    """Real FER2013 faces, enlarged 3x onto a canvas, detected and cropped back to 48x48."""
    faces = data_loader.load_fer2013(shared_fer2013).split("PublicTest").images[:40]
    l1 = {margin: [] for margin in (0.85, translate.FER_MARGIN, 1.25)}
    correlations = []
    for face in faces:
        canvas = enlarged_on_canvas(face, 3)
        boxes = translate.detect_faces(canvas)
        if not boxes:
            continue  # the Haar cascade misses some FER faces (profiles, hands, glasses)
        for margin in l1:
            crop = translate.crop_face(canvas, boxes[0], margin).astype(np.float32)
            l1[margin].append(np.abs(crop - face).mean())
        crop = translate.crop_face(canvas, boxes[0]).astype(np.float32)
        correlations.append(np.corrcoef(crop.ravel(), face.astype(np.float32).ravel())[0, 1])
    assert len(correlations) >= 24, f"only {len(correlations)} of 40 FER faces detected"
    median = {margin: float(np.median(values)) for margin, values in l1.items()}
    assert median[translate.FER_MARGIN] < 40, median  # grey levels; measured 33
    assert median[translate.FER_MARGIN] + 10 < min(median[0.85], median[1.25]), median
    assert np.median(correlations) > 0.7  # measured 0.81


# ---------------------------------------------------------------------------------------------
# Errors: one line, exit status 2, nothing written
# ---------------------------------------------------------------------------------------------

def _blank(path):
    Image.fromarray(np.full((240, 320, 3), 200, np.uint8)).save(path)


def _truncated(path):
    path.write_bytes(PORTRAIT.read_bytes()[:2000])


def _text(path):
    path.write_text("emotion,pixels,Usage\n")


@pytest.mark.parametrize("make_photo, name, message", [
    (_blank, "blank.png", "no face found"),
    (_truncated, "cut.jpg", "not a readable image"),
    (_text, "notes.png", "not a readable image"),
    (lambda path: None, "missing.jpg", "no such file"),
])
def test_bad_photos_are_one_line_errors(tiny_generator, tmp_path, capsys, make_photo, name, message):
    photo = tmp_path / name
    make_photo(photo)
    out = tmp_path / "grid.png"
    assert translate.main([str(photo), "--generator", str(tiny_generator), "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert message in err and str(photo) in err
    assert not out.exists()


def test_missing_or_broken_generator_is_a_one_line_error(tmp_path, capsys):
    face = tmp_path / "face.png"
    Image.fromarray(synthetic_faces.draw_faces([6], seed=2)[0]).save(face)
    for generator, message in [(tmp_path / "nowhere", "no trained generator here"),
                               (tmp_path / "broken", "cannot load the generator")]:
        if generator.name == "broken":
            generator.mkdir()
            (generator / "config.json").write_text(json.dumps({"experiment": "ccyclegan_t2"}))
            (generator / "g_enc.keras").write_bytes(b"not a zip")
        assert translate.main([str(face), "--no_detect", "--generator", str(generator),
                               "--out", str(tmp_path / "grid.png")]) == 2
        err = one_error_line(capsys)
        assert message in err and str(generator) in err
    assert not (tmp_path / "grid.png").exists()


def test_default_generator_missing_says_how_to_choose_one(tmp_path, capsys, monkeypatch):
    default = tmp_path / "saved_models" / "pretrained"
    monkeypatch.setattr(translate, "DEFAULT_GENERATOR", default)
    face = tmp_path / "face.png"
    Image.fromarray(synthetic_faces.draw_faces([1], seed=3)[0]).save(face)
    assert translate.main([str(face), "--no_detect", "--out", str(tmp_path / "grid.png")]) == 2
    err = one_error_line(capsys)
    assert str(default) in err and "saved_models/<run>" in err


def test_opencv_without_haar_cascades_is_a_one_line_error(tiny_generator, tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(translate.cv2, "CascadeClassifier", raising=False)  # as in OpenCV 5
    assert translate.main([str(PORTRAIT), "--generator", str(tiny_generator),
                           "--out", str(tmp_path / "grid.png")]) == 2
    assert "opencv-python-headless<5" in one_error_line(capsys)


# ---------------------------------------------------------------------------------------------
# The committed weights
# ---------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (translate.DEFAULT_GENERATOR / "config.json").is_file(),
                    reason="saved_models/pretrained/ is not committed yet")
def test_committed_weights_translate_a_photo(tmp_path):
    per_emotion = tmp_path / "each"
    result = subprocess.run([sys.executable, str(REPO / "translate.py"), str(PORTRAIT),
                             "--per_emotion", str(per_emotion)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "grace_hopper_emotions.png").is_file()
    faces = {emotion: np.asarray(Image.open(per_emotion / f"face1_{emotion.lower()}.png"), np.float32)
             for emotion in data_loader.EMOTIONS}
    # A trained generator draws a different face for each requested emotion.
    assert np.abs(faces["Happy"] - faces["Sad"]).mean() > 2.0
