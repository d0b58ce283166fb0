"""figures.py: the README's grid and gallery remade from a run folder."""
import numpy as np
import PIL.Image
import pytest

import figures


def test_grid_and_gallery_from_a_run_folder(synthetic_csv, tiny_generator, tmp_path, capsys):
    out = tmp_path / "docs"
    assert figures.main([str(tiny_generator), "--data", str(synthetic_csv), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tiny_gallery.png", "tiny_grid.png"]
    grid = np.asarray(PIL.Image.open(out / "tiny_grid.png"))
    assert grid.ndim == 2 and grid.shape[1] > grid.shape[0]  # 9 columns, 7 rows
    assert "of 7 faces detected" in capsys.readouterr().out


def test_the_gallery_finds_photographs_on_its_canvas(photo, tmp_path):
    """Three copies of a real face on the canvas: translate.py's detector finds all three."""
    class Identity:
        def translate(self, images, targets):
            return images

    assert figures.write_gallery(tmp_path / "gallery.png", Identity(), np.stack([photo] * 3), "t") == 3
    assert (tmp_path / "gallery.png").is_file()


@pytest.mark.parametrize("what", ["data", "generator", "masks"])
def test_missing_input_is_one_line(what, synthetic_csv, tiny_generator, tmp_path, capsys):
    """No data, no run folder, or --masks of a generator without attention masks (T2's)."""
    data = tmp_path / "none.csv" if what == "data" else synthetic_csv
    run = tmp_path / "no_run" if what == "generator" else tiny_generator
    masks = ["--masks"] if what == "masks" else []
    assert figures.main([str(run), "--data", str(data), "--out", str(tmp_path / "docs"), *masks]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "docs").exists()
