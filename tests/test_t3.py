"""T3 (ccyclegan_t3.py): R1's input gradient on every backend, the attention composition, resume, and
the tools loading a T3 run folder.

Networks are 4 channels wide and runs 2 steps long; JAX and torch run tests/input_gradient_case.py in
subprocesses (the backend is fixed per process), the rest runs here on TensorFlow (see conftest).
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import ccyclegan_t3
import evaluate
import export
import figures
import input_gradient_case
import run_folder
import synthetic_faces
import train_config
import translate
from test_trainer import TINY, arrays, log, run

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_r1_input_gradient_is_exact_and_second_order_on_every_backend(tmp_path):
    """The hand-computable case on every backend (JAX and torch, when installed, in subprocesses);
    T3's R1 D loss and its weight gradients from the same weights agree on TensorFlow and torch.
    (Compiling that second-order D takes JAX half a minute on 2 cores; JAX's instance-norm variance is
    exact, and its hand case runs compiled in a StatelessScope, as the trainer's step does.)"""
    import keras
    keras.utils.set_random_seed(0)
    weights = tmp_path / "d.npz"
    d = ccyclegan_t3.build_discriminator(ccyclegan_t3.Config(base_filters=4))
    np.savez(weights, **{str(i): w for i, w in enumerate(d.get_weights())})
    input_gradient_case.check_square_sum()
    reference = input_gradient_case.t3_d_loss(weights)
    assert reference["r1"] > 0
    for backend, d_case in (("jax", []), ("torch", [weights, tmp_path / "torch.npz"])):
        if importlib.util.find_spec(backend) is None:
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, str(REPO / "tests" / "input_gradient_case.py"), *map(str, d_case)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    if importlib.util.find_spec("torch"):
        with np.load(tmp_path / "torch.npz") as torch_values:
            for key, value in reference.items():
                np.testing.assert_allclose(torch_values[key], value, rtol=1e-3, atol=1e-5, err_msg=key)


def test_attention_keeps_the_input_where_the_mask_is_one():
    from keras import ops
    faces = np.random.default_rng(1).uniform(-1, 1, (2, 48, 48, 1)).astype(np.float32)
    colour = np.full_like(faces, 0.25)
    mask = np.zeros_like(faces)
    mask[:, :24] = 1.0  # the upper half kept, the lower half G's colour
    out = ops.convert_to_numpy(ccyclegan_t3.attend(faces, colour, mask))
    np.testing.assert_array_equal(out[:, :24], faces[:, :24])
    np.testing.assert_array_equal(out[:, 24:], colour[:, 24:])

    # Through the generator: a mask head pinned to 1 (sigmoid(30) is 1.0 in float32) returns the input.
    nets = ccyclegan_t3.build_networks(ccyclegan_t3.Config(base_filters=4))
    mask_head = nets["g_dec"].get_layer("mask")
    mask_head.set_weights([np.zeros(mask_head.kernel.shape), np.full(mask_head.bias.shape, 30.0)])
    translated = ccyclegan_t3.translate(nets, ops.convert_to_tensor(faces), ops.convert_to_tensor([3, 5], "int32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(translated), faces)


def upsample_bilinear_2x(maps):
    """A 2x bilinear upsampling with half-pixel centres, edges clamped, in numpy: (N, H, W, 1) ->
    (N, 2H, 2W, 1). Each output pixel is 3/4 of its own source pixel and 1/4 of the next one out."""
    for axis in (1, 2):
        before = np.concatenate([np.take(maps, [0], axis), np.delete(maps, -1, axis)], axis)
        after = np.concatenate([np.delete(maps, 0, axis), np.take(maps, [-1], axis)], axis)
        maps = np.stack([0.75 * maps + 0.25 * before, 0.75 * maps + 0.25 * after], axis + 1)
        maps = maps.reshape(*maps.shape[:axis], -1, *maps.shape[axis + 2:])
    return maps


def test_a_mask_at_lower_resolution_is_the_full_masks_block_average_resized_with_the_same_weights():
    """--mask_resolution 24 adds no weights (a 48x48 run's weights load unchanged, so a run can branch
    into it), and its mask is the 48x48 mask averaged over 2x2 blocks and resized back: smoother."""
    from keras import ops
    full = ccyclegan_t3.build_networks(ccyclegan_t3.Config(base_filters=4))
    coarse = ccyclegan_t3.build_networks(ccyclegan_t3.Config(base_filters=4, mask_resolution=24))
    for name, net in full.items():
        coarse[name].set_weights(net.get_weights())
    faces = ops.convert_to_tensor(np.random.default_rng(3).uniform(-1, 1, (2, 48, 48, 1)).astype(np.float32))
    labels = ops.convert_to_tensor([1, 4], "int32")
    masks = {}
    for resolution, nets in ((48, full), (24, coarse)):
        skips = ccyclegan_t3.encode(nets, faces, labels)
        masks[resolution] = ops.convert_to_numpy(ccyclegan_t3.decode(nets, skips, faces, labels)[1])
    block_average = masks[48].reshape(2, 24, 2, 24, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(masks[24], upsample_bilinear_2x(block_average), atol=1e-6)
    assert ccyclegan_t3.total_variation(masks[24]) < ccyclegan_t3.total_variation(masks[48])


def test_reconstruction_follows_the_cycle_the_run_trained():
    """--cycle translation rebuilds a face through the next emotion and back; own_label decodes it with
    its own label (what the sample grids' last column then shows)."""
    from keras import ops
    nets = ccyclegan_t3.build_networks(ccyclegan_t3.Config(base_filters=4))
    faces = ops.convert_to_tensor(np.random.default_rng(2).uniform(-1, 1, (2, 48, 48, 1)).astype(np.float32))
    labels = ops.convert_to_tensor([3, 6], "int32")
    own = ccyclegan_t3.translate(nets, faces, labels)
    detour = ccyclegan_t3.translate(nets, ccyclegan_t3.translate(nets, faces, ops.convert_to_tensor([4, 0], "int32")),
                                    labels)
    for cycle, expected in (("own_label", own), ("translation", detour)):
        rebuilt = ccyclegan_t3.reconstruct(nets, faces, labels, ccyclegan_t3.Config(base_filters=4, cycle=cycle))
        np.testing.assert_allclose(ops.convert_to_numpy(rebuilt), ops.convert_to_numpy(expected), atol=1e-6)
    assert not np.allclose(ops.convert_to_numpy(own), ops.convert_to_numpy(detour), atol=1e-3)


@pytest.mark.parametrize("cutout", [24, 5, 0])
def test_diff_augment_moves_and_blanks_each_face_by_its_drawn_params(cutout):
    """Against a loop over pixels: row i, column k of the result is the face's (i - dy, k - dx), zero
    off the edge, and 0 on the cutout x cutout square whose rows are cy - cutout // 2, ... (and
    columns likewise); --cutout 0 shifts only."""
    from keras import ops
    faces = np.random.default_rng(4).uniform(-1, 1, (3, 48, 48, 1)).astype(np.float32)
    params = np.array([[2, -3, 100, 100], [0, 0, 10, 40], [-6, 6, 0, 47]], np.int32)
    out = ops.convert_to_numpy(ccyclegan_t3.diff_augment(ops.convert_to_tensor(faces), ops.convert_to_tensor(params),
                                                         cutout))
    for face, result, (dy, dx, cy, cx) in zip(faces[..., 0], out[..., 0], params):
        expected = np.zeros_like(face)
        for i in range(48):
            for k in range(48):
                if 0 <= i - dy < 48 and 0 <= k - dx < 48:
                    expected[i, k] = face[i - dy, k - dx]
        low_y, low_x = max(cy - cutout // 2, 0), max(cx - cutout // 2, 0)
        expected[low_y:cy - cutout // 2 + cutout, low_x:cx - cutout // 2 + cutout] = 0
        np.testing.assert_array_equal(result, expected)


def test_diff_augment_reaches_every_face_d_sees_and_only_with_the_flag():
    """D's and G's losses with --diff_augment: equal to the plain ones when every draw is the identity
    (no shift, the square off the face), different with the drawn ones; without the flag the draws
    are ignored. Real faces and translations take their own rows of the draws."""
    from keras import ops
    import trainer
    rng = np.random.default_rng(5)
    images = rng.uniform(-1, 1, (4, 48, 48, 1)).astype(np.float32)
    labels = np.array([0, 3, 5, 6], np.int32)
    targets = ccyclegan_t3.draw_targets(labels, rng)
    assert targets["augment"].shape == (4, 7, 4) and targets["emotions"].shape == (4, 6)
    identity = {**targets, "augment": np.tile(np.array([0, 0, 1000, 1000], np.int32), (4, 7, 1))}
    plain, augmented = (ccyclegan_t3.Config(base_filters=4, diff_augment=flag) for flag in (False, True))
    nets = ccyclegan_t3.build_networks(plain)

    def losses(config, draws):
        batch = trainer.Batch(ops.convert_to_tensor(images), ops.convert_to_tensor(labels),
                              {k: ops.convert_to_tensor(v) for k, v in draws.items()})
        generated = ccyclegan_t3.generate(nets, batch, config)
        return [float(ops.convert_to_numpy(loss(nets, batch, generated, config)[1][term]))
                for loss in (ccyclegan_t3.discriminator_loss, ccyclegan_t3.generator_loss) for term in ("adv", "cls")]
    reference = losses(plain, targets)
    np.testing.assert_allclose(losses(augmented, identity), reference, rtol=1e-5)
    np.testing.assert_allclose(losses(plain, identity), reference, rtol=1e-6)
    changed = losses(augmented, targets)
    assert all(abs(a - b) > 1e-6 for a, b in zip(changed, reference)), (changed, reference)
    # Row 0 is the real face's, rows 1-6 its translations': D's emotion term reads real faces only
    # (softmax head), G's terms translations only.
    real_only = {**targets, "augment": np.concatenate([targets["augment"][:, :1], identity["augment"][:, 1:]], 1)}
    fakes_only = {**targets, "augment": np.concatenate([identity["augment"][:, :1], targets["augment"][:, 1:]], 1)}
    d_adv, d_cls, g_adv, g_cls = losses(augmented, real_only)
    assert abs(d_cls - reference[1]) > 1e-6
    np.testing.assert_allclose([g_adv, g_cls], reference[2:], rtol=1e-5)
    d_adv, d_cls, g_adv, g_cls = losses(augmented, fakes_only)
    np.testing.assert_allclose(d_cls, reference[1], rtol=1e-5)
    assert abs(g_adv - reference[2]) > 1e-6 and abs(g_cls - reference[3]) > 1e-6


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_gaussian_blur_is_scipys_gaussian_filter_with_zeros_outside(sigma):
    from keras import ops
    from scipy import ndimage
    faces = np.random.default_rng(6).uniform(-1, 1, (2, 48, 48, 1)).astype(np.float32)
    blurred = ops.convert_to_numpy(ccyclegan_t3.gaussian_blur(ops.convert_to_tensor(faces), sigma))
    expected = ndimage.gaussian_filter(faces, (0, sigma, sigma, 0), mode="constant", cval=0.0, truncate=2.0)
    np.testing.assert_allclose(blurred, expected, atol=1e-5)


def test_emotion_blur_reaches_only_what_ds_emotion_head_reads():
    """With --emotion_blur the real/fake terms of D and G are as without it, and the emotion terms are
    those of the faces blurred beforehand: D's on the real faces, G's on its translations."""
    from keras import ops
    import trainer
    rng = np.random.default_rng(7)
    images = rng.uniform(-1, 1, (3, 48, 48, 1)).astype(np.float32)
    labels = np.array([1, 2, 4], np.int32)
    targets = {k: ops.convert_to_tensor(v) for k, v in ccyclegan_t3.draw_targets(labels, rng).items()}
    sharp, blurred = (ccyclegan_t3.Config(base_filters=4, diff_augment=False, emotion_blur=sigma) for sigma in (0, 1.5))
    nets = ccyclegan_t3.build_networks(sharp)
    blur = lambda faces: ccyclegan_t3.gaussian_blur(faces, 1.5)  # noqa: E731
    batch = trainer.Batch(ops.convert_to_tensor(images), ops.convert_to_tensor(labels), targets)
    generated = ccyclegan_t3.generate(nets, batch, sharp)
    d_terms = lambda config, batch: ccyclegan_t3.discriminator_loss(nets, batch, generated, config)[1]  # noqa: E731
    g_terms = lambda config, fakes: ccyclegan_t3.generator_loss(  # noqa: E731
        nets, batch, {**generated, "fakes": fakes}, config)[1]
    value = lambda x: float(ops.convert_to_numpy(x))  # noqa: E731
    blurred_batch = trainer.Batch(blur(batch.images), batch.labels, targets)
    d_sharp, d_blurred, d_pre = d_terms(sharp, batch), d_terms(blurred, batch), d_terms(sharp, blurred_batch)
    g_sharp, g_blurred = g_terms(sharp, generated["fakes"]), g_terms(blurred, generated["fakes"])
    g_pre = g_terms(sharp, blur(generated["fakes"]))
    for sharp_terms, blurred_terms, pre_blurred in ((d_sharp, d_blurred, d_pre), (g_sharp, g_blurred, g_pre)):
        np.testing.assert_allclose(value(blurred_terms["adv"]), value(sharp_terms["adv"]), rtol=1e-6)
        np.testing.assert_allclose(value(blurred_terms["cls"]), value(pre_blurred["cls"]), rtol=1e-5)
        assert abs(value(blurred_terms["cls"]) - value(sharp_terms["cls"])) > 1e-6
    line = np.zeros((1, 48, 48, 1), np.float32)
    line[0, 24] = 1.0  # a line one pixel wide keeps under a third of its height
    assert ops.convert_to_numpy(blur(ops.convert_to_tensor(line)))[0, 24, 24, 0] < 0.3


def test_augment_heads_emotion_shows_the_real_fake_head_the_faces_as_they_are():
    """With --augment_heads emotion the real/fake terms of D and G are those without DiffAugment, and
    the emotion terms those with it (both heads shifted, the default)."""
    from keras import ops
    import trainer
    rng = np.random.default_rng(8)
    labels = np.array([0, 5, 3], np.int32)
    targets = {k: ops.convert_to_tensor(v) for k, v in ccyclegan_t3.draw_targets(labels, rng).items()}
    batch = trainer.Batch(ops.convert_to_tensor(rng.uniform(-1, 1, (3, 48, 48, 1)).astype(np.float32)),
                          ops.convert_to_tensor(labels), targets)
    plain, both, emotion = (ccyclegan_t3.Config(base_filters=4, diff_augment=augment, augment_heads=heads)
                            for augment, heads in ((False, "both"), (True, "both"), (True, "emotion")))
    nets = ccyclegan_t3.build_networks(plain)
    generated = ccyclegan_t3.generate(nets, batch, plain)

    def terms(config):
        return {(loss.__name__, term): float(ops.convert_to_numpy(value))
                for loss in (ccyclegan_t3.discriminator_loss, ccyclegan_t3.generator_loss)
                for term, value in loss(nets, batch, generated, config)[1].items() if term in ("adv", "cls")}
    sharp, shifted, split = terms(plain), terms(both), terms(emotion)
    for key in split:
        expected = (sharp if key[1] == "adv" else shifted)[key]
        np.testing.assert_allclose(split[key], expected, rtol=1e-5, err_msg=str(key))
        assert abs(sharp[key] - shifted[key]) > 1e-6, key  # the shifts change every term
    with pytest.raises(train_config.ConfigError, match="--augment_heads"):
        ccyclegan_t3.Config(diff_augment=False, augment_heads="emotion").check()


def test_d_patch_judges_each_patch_and_the_adversarial_terms_average_over_faces_and_patches():
    """With --d_patch D's real/fake output is a 4 x 4 map per face (its emotion logits as before), and
    G's adversarial term is the mean over faces and patches of -log sigmoid(logit)."""
    from keras import ops
    import trainer
    rng = np.random.default_rng(5)
    labels = np.array([1, 6], np.int32)
    targets = {k: ops.convert_to_tensor(v) for k, v in ccyclegan_t3.draw_targets(labels, rng).items()}
    batch = trainer.Batch(ops.convert_to_tensor(rng.uniform(-1, 1, (2, 48, 48, 1)).astype(np.float32)),
                          ops.convert_to_tensor(labels), targets)
    config = ccyclegan_t3.Config(base_filters=4, diff_augment=False, d_patch=True)
    nets = ccyclegan_t3.build_networks(config)
    generated = ccyclegan_t3.generate(nets, batch, config)
    adv, cls = (ops.convert_to_numpy(x).astype(np.float64) for x in nets["d"](generated["fakes"]))
    assert adv.shape == (12, 4, 4, 1) and cls.shape == (12, 7)
    g_adv = float(ops.convert_to_numpy(ccyclegan_t3.generator_loss(nets, batch, generated, config)[1]["adv"]))
    np.testing.assert_allclose(g_adv, np.mean(np.log1p(np.exp(-adv))), rtol=1e-5)
    default = ccyclegan_t3.build_discriminator(ccyclegan_t3.Config(base_filters=4))
    shapes = lambda weights: [tuple(w.shape) for w in weights]  # noqa: E731
    assert shapes(default.weights[:10]) == shapes(nets["d"].weights[:10])  # T2's four conv blocks
    assert shapes(default.weights[-2:]) == shapes(nets["d"].weights[-2:])  # and its emotion logits


EVERY_CHANGE = ["--r1_gamma", "1", "--cutout", "24", "--emotion_blur", "1", "--d_patch",  # off by default
                "--augment_heads", "emotion"]


@pytest.fixture(scope="module")
def t3_csv(tmp_path_factory):
    """14 Training faces (one batch of 8 per epoch) and 14 PublicTest faces."""
    path = tmp_path_factory.mktemp("t3") / "tiny.csv"
    return synthetic_faces.write_synthetic_csv(path, train_per_class=2, test_per_class=2, seed=3)


@pytest.fixture(scope="module")
def straight_t3(t3_csv, tmp_path_factory):
    """A 2-step T3 run with every change on (the defaults, plus R1, DiffAugment's square, the blurred
    emotion view, the patch real/fake head reading unshifted faces), uninterrupted (over an epoch
    boundary)."""
    root = tmp_path_factory.mktemp("straight_t3")
    assert run(ccyclegan_t3, root, "--data", t3_csv, "--run_name", "r", "--max_steps", 2, *EVERY_CHANGE, *TINY) == 0
    return root / "saved_models" / "r"


def test_t3_logs_its_terms_and_resumes_exactly_like_an_uninterrupted_run(straight_t3, t3_csv, tmp_path):
    assert {"D/adv", "D/cls", "D/r1", "G/adv", "G/cls", "G/cyc", "G/mask", "G/mask_tv"} <= set(log(straight_t3)[0])
    args = ["--data", t3_csv, "--run_name", "r", *EVERY_CHANGE, *TINY]
    assert run(ccyclegan_t3, tmp_path, *args, "--max_steps", 1) == 0
    assert run(ccyclegan_t3, tmp_path, *args, "--max_steps", 2, "--resume") == 0
    resumed, straight = arrays(tmp_path / "saved_models" / "r"), arrays(straight_t3)
    assert resumed.keys() == straight.keys()
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    without_time = lambda records: [{k: v for k, v in r.items() if k != "time"} for r in records]  # noqa: E731
    assert without_time(log(tmp_path / "saved_models" / "r")) == without_time(log(straight_t3))


def test_figures_draws_a_t3_runs_attention_masks(straight_t3, t3_csv, tmp_path):
    translator = run_folder.load_translator(straight_t3)
    faces = synthetic_faces.draw_faces([3, 0], seed=5)[..., None].astype(np.float32) / 127.5 - 1
    masks = translator.masks(faces, np.array([1, 6]))
    assert masks.shape == faces.shape and 0 <= masks.min() and masks.max() <= 1 and masks.std() > 0
    assert figures.main([str(straight_t3), "--data", str(t3_csv), "--out", str(tmp_path), "--masks"]) == 0
    grid = np.asarray(Image.open(tmp_path / "r_masks.png"))
    assert grid.ndim == 2 and grid.shape[1] > grid.shape[0]  # 8 columns (input, 7 emotions), 7 rows


def test_translate_evaluate_and_export_load_a_t3_run(straight_t3, t3_csv, tiny_classifier_path, tmp_path, capsys):
    face = synthetic_faces.draw_faces([3], seed=5)[0]
    Image.fromarray(face).save(tmp_path / "face.png")
    assert translate.main([str(tmp_path / "face.png"), "--no_detect", "--generator", str(straight_t3),
                           "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()
    assert evaluate.main([str(straight_t3), "--data", str(t3_csv), "--classifier", str(tiny_classifier_path),
                          "--max_per_class", "2"]) == 0
    assert "appended to" in capsys.readouterr().out
    translator = run_folder.load_translator(straight_t3)
    faces = np.zeros((2, 48, 48, 1), np.float32)
    model = export.deployable_generator(straight_t3)
    np.testing.assert_allclose(model.predict_on_batch([faces, np.array([1, 6], np.int32)]),
                               translator.translate(faces, np.array([1, 6])), atol=1e-6)


@pytest.mark.parametrize("resize", [False, True])
def test_upsampling_by_resize_keeps_a_flat_map_flat_where_a_transposed_conv_paints_a_checkerboard(resize):
    """The reason for --upsample resize, at one of G_dec's blocks with random weights: a constant
    10x10 map comes out of a transposed conv with a period-2 pattern (even and odd pixels are made by
    different kernel taps) and out of resize + conv constant, away from the border."""
    import keras
    from keras import ops
    import blocks
    keras.utils.set_random_seed(1)
    flat = keras.Input((10, 10, 6))
    block = keras.Model(flat, blocks.upsample_block(flat, 4, 23, resize=resize, norm=False, activation="linear"))
    out = ops.convert_to_numpy(block(np.ones((1, 10, 10, 6), np.float32)))[0, 3:-3, 3:-3]
    assert block.output.shape[1:3] == (23, 23)
    spread = (out.max(axis=(0, 1)) - out.min(axis=(0, 1))).max()
    assert (spread < 1e-5) if resize else (spread > 1e-2), spread


def test_a_t3_run_with_transposed_upsampling_and_a_coarse_mask_trains_and_loads_everywhere(t3_csv, tmp_path):
    """T2's upsampling and a 24x24 mask, the choices the straight run above does not make."""
    assert run(ccyclegan_t3, tmp_path, "--data", t3_csv, "--run_name", "r", "--max_steps", 1, "--upsample",
               "transpose", "--mask_resolution", 24, *TINY) == 0
    folder = tmp_path / "saved_models" / "r"
    faces = synthetic_faces.draw_faces([3, 0], seed=5)[..., None].astype(np.float32) / 127.5 - 1
    translated = run_folder.load_translator(folder).translate(faces, np.array([1, 6]))
    assert translated.shape == (2, 48, 48, 1) and np.isfinite(translated).all()
    deployable = export.deployable_generator(folder)
    np.testing.assert_allclose(deployable.predict_on_batch([faces, np.array([1, 6], np.int32)]), translated, atol=1e-6)


@pytest.mark.parametrize("switch_off, flag", [("--no-attention", ("--mask_resolution", 24)),
                                               ("--no-attention", ("--lambda_mask_tv", 0.1)),
                                               ("--no-diff_augment", ("--cutout", 24))])
def test_a_flag_of_a_change_switched_off_is_one_error_line_and_writes_nothing(switch_off, flag, t3_csv, tmp_path,
                                                                              capsys):
    assert run(ccyclegan_t3, tmp_path, "--data", t3_csv, switch_off, *flag, *TINY) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"with {switch_off}" in err[0], err
    assert not [path for path in tmp_path.rglob("*") if path.is_file()], list(tmp_path.rglob("*"))


def test_a_t3_run_folder_older_than_its_defaults_loads_and_resumes_as_it_trained(t3_csv, tmp_path):
    """A config.json written before --upsample, --diff_augment and --cutout existed (it lacks them) means
    transposed convs, no augmentation and a 24-pixel square, not today's defaults."""
    args = ["--data", t3_csv, "--run_name", "old", *TINY]
    assert run(ccyclegan_t3, tmp_path, *args, "--max_steps", 1, "--upsample", "transpose", "--no-diff_augment") == 0
    folder = tmp_path / "saved_models" / "old"
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items()
                                                     if k not in ("upsample", "diff_augment", "cutout")}))
    faces = np.zeros((1, 48, 48, 1), np.float32)
    assert run_folder.load_translator(folder).translate(faces, np.array([2])).shape == (1, 48, 48, 1)
    assert run(ccyclegan_t3, tmp_path, *args, "--max_steps", 2, "--resume") == 0
    resumed = json.loads((folder / "config.json").read_text())
    assert (resumed["upsample"], resumed["diff_augment"], resumed["cutout"]) == ("transpose", False, 24)
