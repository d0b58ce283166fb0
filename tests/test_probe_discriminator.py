"""probe_discriminator.py: a D it trains finds what marks fakes; the tool on a run folder."""
import numpy as np

import ccyclegan_t2
import probe_discriminator
import synthetic_faces
from data_loader import to_float


def test_the_probe_finds_a_mark_on_the_fakes_and_not_a_difference_that_is_not_there():
    """Fakes with a bright square at a fixed place: the unshifted D learns them (held-out AUC near 1;
    swapped labels would give near 0). Fakes that are other faces unmarked: AUC near chance."""
    images, _ = synthetic_faces.make_synthetic(40)
    faces = to_float(images)
    marked = faces.copy()
    marked[:, 6:14, 6:14] = 1.0
    config = ccyclegan_t2.Config(base_filters=4)
    build = lambda: ccyclegan_t2.build_discriminator(config)  # noqa: E731
    split = lambda fakes: ((faces[:100], fakes[100:200]), (faces[200:240], fakes[240:280]))  # noqa: E731
    said = []
    _, marked_auc = probe_discriminator.probe(build, *split(marked), steps=20, batch_size=16, learning_rate=2e-3,
                                              beta_1=0.5, beta_2=0.999, every=10, seed=0, seen=["sharp"],
                                              say=said.append)
    assert marked_auc["sharp"] > 0.9, said
    assert len(said) == 2 and said[-1].startswith("step 20: sharp D loss")
    _, same_auc = probe_discriminator.probe(build, *split(faces), steps=20, batch_size=16,
                                            learning_rate=2e-3, beta_1=0.5, beta_2=0.999, every=20, seed=0,
                                            seen=["sharp"], say=said.append)
    assert 0.25 < same_auc["sharp"] < 0.75, same_auc


def test_shifted_moves_faces_with_zeros_coming_in():
    faces = np.arange(2 * 48 * 48, dtype=np.float32).reshape(2, 48, 48, 1)
    moved = probe_discriminator.shifted(faces, np.array([[2, 0], [0, -3]]))
    np.testing.assert_array_equal(moved[0, 2:], faces[0, :-2])
    np.testing.assert_array_equal(moved[0, :2], 0)
    np.testing.assert_array_equal(moved[1, :, :-3], faces[1, :, 3:])
    np.testing.assert_array_equal(moved[1, :, -3:], 0)


def test_the_tool_on_a_run_folder_and_its_bad_inputs(tiny_generator, synthetic_csv, tmp_path, capsys):
    assert probe_discriminator.main([str(tiny_generator), "--data", str(synthetic_csv), "--faces", "16",
                                     "--held_out", "8", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "16 + 16 Training faces" in out and "step 1: sharp D loss" in out and "(6, 6) AUC" in out
    assert probe_discriminator.main([str(tmp_path / "none"), "--data", str(synthetic_csv)]) == 2
    assert probe_discriminator.main([str(tiny_generator), "--data", str(synthetic_csv), "--faces", "10000"]) == 2
    assert probe_discriminator.main([str(tiny_generator), "--every", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "--faces takes 1 to" in err[1] and "--every" in err[2]
