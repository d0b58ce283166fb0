"""The rule that picks sample-grid faces: clean frontal photographs, not drawings or cut-outs."""
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

import data_loader as dl
import face_detection
import synthetic_faces


def test_a_photograph_passes(photo):
    assert face_detection.looks_like_photo(photo)


def cut_out_on_white(face):
    """The face shrunk to the middle of a white frame, as FER2013's cut-outs are."""
    framed = np.full_like(face, 255)
    framed[8:40, 8:40] = cv2.resize(face, (32, 32), interpolation=cv2.INTER_AREA)
    return framed


def drawn(face):
    """A posterised face: 6 grey levels in flat areas, as drawings and cartoons are."""
    return (face // 43 * 51).astype(np.uint8)


@pytest.mark.parametrize("spoil", [cut_out_on_white, drawn, np.fliplr], ids=["cut-out", "drawing", "control"])
def test_drawings_and_cut_outs_fail(photo, spoil):
    assert face_detection.looks_like_photo(spoil(photo)) == (spoil is np.fliplr)


def test_no_face_fails(photo):
    noise = np.random.default_rng(0).normal(photo.mean(), photo.std(), photo.shape)
    assert not face_detection.looks_like_photo(np.clip(noise, 0, 255).astype(np.uint8))


def test_grid_faces_prefer_photographs(photo):
    """Among drawn faces, the one photograph is the grid's Happy face for every seed."""
    labels = np.arange(70) % 7
    images = drawn(synthetic_faces.draw_faces(labels, seed=1))
    images[3 + 7 * 4] = photo  # one Happy face of ten is the photograph
    split = dl.Split("PublicTest", images, labels.astype(np.int64))
    for seed in range(3):
        x, _ = dl.fixed_faces(split, seed=seed)
        np.testing.assert_array_equal(dl.to_uint8(x[3:4])[0], photo)


def test_grid_faces_without_a_detector(monkeypatch):
    """OpenCV 5 has no Haar cascade: grids still get a seeded face per emotion."""
    monkeypatch.delattr(face_detection.cv2, "CascadeClassifier", raising=False)
    split = dl.Split("PublicTest", synthetic_faces.draw_faces(np.arange(14) % 7, seed=2),
                     (np.arange(14) % 7).astype(np.int64))
    x, labels = dl.fixed_faces(split, seed=0)
    np.testing.assert_array_equal(labels, np.arange(7))


def test_the_cascade_loads_once_per_thread():
    """Loading the XML per detection is work done again; one classifier shared by threads is unsafe
    (detectMultiScale mutates it), so each thread gets its own."""
    here = face_detection.face_detector()
    assert face_detection.face_detector() is here
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(face_detection.face_detector()))
    thread.start()
    thread.join()
    assert elsewhere[0] is not here and not elsewhere[0].empty()


def test_the_data_layer_loads_opencv_only_to_pick_grid_faces():
    probe = ("import sys, data_loader; before = 'cv2' in sys.modules; "
             "data_loader.face_detection.MAX_FLAT; print(before, 'cv2' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=dl.REPO_ROOT, capture_output=True, text=True)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]
