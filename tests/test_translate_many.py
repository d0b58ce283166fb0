"""translate.py over many photos and folders (batched, bad photos skipped) and --paste_back."""
import pathlib
import shutil

import numpy as np
from matplotlib import cbook
from PIL import Image

import data_loader
import translate

PORTRAIT = pathlib.Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600 colour


class CountingTranslator:
    """The real generator, counting its calls."""

    def __init__(self, translator):
        self.translator, self.calls = translator, 0

    def translate(self, x, targets):
        self.calls += 1
        return self.translator.translate(x, targets)


def test_a_folder_and_files_in_one_batch_with_bad_photos_skipped_and_faces_pasted_back(
        tiny_generator, tmp_path, capsys, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PORTRAIT, photos / "grace_hopper.jpg")
    Image.fromarray(np.full((200, 300, 3), 200, np.uint8)).save(photos / "blank.png")
    (photos / "notes.jpg").write_text("not a photo")
    (photos / "readme.txt").write_text("not an image name: not read")
    counting = CountingTranslator(translate.load_generator(tiny_generator))
    monkeypatch.setattr(translate, "load_generator", lambda run_dir: counting)
    out = tmp_path / "results"

    assert translate.main([str(photos), str(PORTRAIT), "--out", str(out), "--paste_back",
                           "--generator", str(tiny_generator)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"2 faces in 2 photos -> {out}/; 2 skipped"
    skipped = captured.err.strip().splitlines()
    assert len(skipped) == 2 and all(line.startswith("skipped: ") for line in skipped)
    assert "blank.png: no face found" in skipped[0] and "notes.jpg: not a readable image" in skipped[1]
    assert counting.calls == 1  # every face of the batch in one generator call

    emotions = [emotion.lower() for emotion in data_loader.EMOTIONS]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}_{suffix}.png" for name in ("grace_hopper", "grace_hopper_2") for suffix in ["emotions", *emotions])
    photo = translate.read_photo(PORTRAIT, "RGB")
    pasted = np.asarray(Image.open(out / "grace_hopper_happy.png"))
    assert pasted.shape == photo.shape
    (left, top, side), = translate.read_faces(PORTRAIT)[0]
    changed = np.any(pasted != photo, axis=2)
    assert changed[top:top + side, left:left + side].any()
    changed[top:top + side, left:left + side] = False
    assert not changed.any()  # nothing outside the face's square moves


def test_paste_back_adds_only_the_change_under_a_soft_mask():
    photo = np.zeros((100, 120, 3), np.uint8)
    photo[..., 0], photo[..., 1], photo[..., 2] = 150, 100, 80
    face = np.full((48, 48), 100, np.uint8)
    assert np.array_equal(translate.paste_back(photo, face, face, (30, 20, 60)), photo)
    brighter = translate.paste_back(photo, face, face + 40, (30, 20, 60))
    grey = brighter.astype(int).mean(axis=2)
    assert grey[50, 60] > photo[50, 60].mean() + 30           # the face's centre took the change
    assert abs(grey[21, 31] - photo[21, 31].mean()) < 3        # its corner hardly (the mask is soft)
    red_minus_blue = brighter[50, 60, 0] - int(brighter[50, 60, 2])
    assert abs(red_minus_blue - 70) <= 3                       # the colour stays
    edge = translate.paste_back(photo[..., 0], face, face + 40, (-30, -30, 60))  # square leaves the photo
    assert edge.shape == (100, 120) and edge[0, 0] > 150


def test_no_photo_translated_is_an_error_after_the_skips(tiny_generator, tmp_path, capsys):
    (tmp_path / "a.jpg").write_text("x")
    (tmp_path / "b.png").write_text("y")
    assert translate.main([str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), "--out", str(tmp_path / "out"),
                           "--generator", str(tiny_generator)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["skipped", "skipped", "error"]
    assert "no photo translated (2 skipped)" in lines[-1]
    assert not (tmp_path / "out").exists()
