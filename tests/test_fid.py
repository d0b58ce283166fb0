"""fid.py: the distances on closed forms and references, extractors, the real-feature cache, the CLI."""
import numpy as np
import pytest
import scipy.linalg

import classifier
import fid
from data_loader import DataError, load_fer2013, to_float


def random_spd(rng, d):
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 1e-3 * np.eye(d)


# ---------------------------------------------------------------------------------------------
# Fréchet distance and KID
# ---------------------------------------------------------------------------------------------

def test_frechet_distance_is_zero_for_identical_statistics():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(64), random_spd(rng, 64)
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9 * np.trace(sigma))


def test_frechet_distance_of_a_pure_mean_shift_is_its_squared_norm():
    rng = np.random.default_rng(1)
    sigma = random_spd(rng, 32)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    assert fid.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


@pytest.mark.parametrize("d", [2, 16, 128])
def test_frechet_distance_agrees_with_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    reference = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)


def test_frechet_distance_stays_finite_with_rank_deficient_covariances():
    # Fewer samples than dimensions (Disgust's 55 faces vs 256-d features): singular covariances.
    rng = np.random.default_rng(2)
    a = fid.feature_statistics(rng.standard_normal((20, 64)))
    b = fid.feature_statistics(rng.standard_normal((20, 64)))
    value = fid.frechet_distance(*a, *b)
    assert np.isfinite(value) and value > 0
    assert fid.frechet_distance(*a, *a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_rejects_mismatched_statistics():
    with pytest.raises(fid.FIDError, match="do not match"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_statistics_are_float64_and_match_numpy():
    features = np.random.default_rng(3).standard_normal((50, 6)).astype(np.float32) + 1000.0
    mu, sigma = fid.feature_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_clearly_positive_for_a_shift():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2000, 256)), rng.standard_normal((2000, 256))
    same, same_std, subset = fid.kernel_inception_distance(x, y)
    shifted, shifted_std, _ = fid.kernel_inception_distance(x, y + 0.3)
    assert subset == 1000
    assert abs(same) < 1e-3
    assert shifted > 0.1 and shifted > 50 * shifted_std


def test_kid_equals_a_per_subset_reference():
    """The one-pass subset sums equal the textbook loop (one kernel matrix per subset)."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((70, 16)) + 0.2
    mean, std, m = fid.kernel_inception_distance(x, y, num_subsets=20, max_subset_size=50, seed=7)
    draw, estimates = np.random.default_rng(7), []
    picks = [(draw.choice(300, 50, replace=False), draw.choice(70, 50, replace=False)) for _ in range(20)]
    for i, j in picks:
        k_xx, k_yy, k_xy = [(a @ b.T / 16 + 1) ** 3 for a, b in ((x[i], x[i]), (y[j], y[j]), (x[i], y[j]))]
        estimates.append((k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (50 * 49)
                         - 2 * k_xy.mean())
    assert m == 50
    assert mean == pytest.approx(np.mean(estimates), rel=1e-10)
    assert std == pytest.approx(np.std(estimates), rel=1e-8)


def test_kid_needs_two_samples_a_side():
    with pytest.raises(fid.FIDError, match="at least 2"):
        fid.kernel_inception_distance(np.zeros((1, 4)), np.zeros((10, 4)))


# ---------------------------------------------------------------------------------------------
# Extractors and the real-feature cache
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def counted(monkeypatch):
    """How many faces each extractor call saw, in order."""
    calls = []
    original = fid.FeatureExtractor._outputs

    def counting(self, faces):
        calls.append(len(faces))
        return original(self, faces)

    monkeypatch.setattr(fid.FeatureExtractor, "_outputs", counting)
    return calls


def test_classifier_extractor_gives_float64_features_and_predictions(tiny_classifier_path):
    extractor = fid.ClassifierExtractor.load(tiny_classifier_path)
    faces = np.random.default_rng(0).uniform(-1, 1, (300, 48, 48, 1)).astype(np.float32)
    features, predicted = extractor.features_and_predictions(faces)
    assert extractor.name == "classifier" and extractor.dim == 8
    assert features.shape == (300, 8) and features.dtype == np.float64
    assert predicted.shape == (300,) and set(predicted) <= set(range(7))
    # batching (256 + 44) does not change the features
    np.testing.assert_allclose(extractor(faces[256:]), features[256:], rtol=1e-5, atol=1e-6)


def test_real_features_are_computed_once_then_read_from_the_cache(tiny_classifier_path, tmp_path, counted):
    extractor = fid.ClassifierExtractor.load(tiny_classifier_path)
    real = np.random.default_rng(0).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    first = fid.real_features(real, extractor, "test faces", tmp_path)
    assert counted == [40] and not first.from_cache and first.cache_file.exists()
    second = fid.real_features(real, extractor, "test faces", tmp_path)
    assert counted == [40] and second.from_cache      # no extractor call: a cache hit
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.sigma, first.sigma)
    assert fid.real_features(real[:39], extractor, "fewer faces", tmp_path).from_cache is False
    other = fid.ClassifierExtractor(classifier.build_classifier(width=4, num_blocks=1, dense_units=8))
    assert fid.real_features(real, other, "other weights", tmp_path).from_cache is False
    assert counted == [40, 39, 40]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".npz"] * 3   # no temp files left


def test_a_damaged_cache_file_is_recomputed(tiny_classifier_path, tmp_path, counted):
    extractor = fid.ClassifierExtractor.load(tiny_classifier_path)
    real = np.random.default_rng(1).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    cache_file = fid.real_features(real, extractor, "", tmp_path).cache_file
    cache_file.write_bytes(b"not an npz")
    again = fid.real_features(real, extractor, "", tmp_path)
    assert not again.from_cache and counted == [10, 10]
    assert fid.real_features(real, extractor, "", tmp_path).from_cache


def test_inception_extractor_plumbing_with_random_weights():
    """2048-d features of 299x299 RGB resizes (ImageNet weights are not available offline)."""
    import keras

    model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                           input_shape=(299, 299, 3))
    extractor = fid.InceptionExtractor(model, batch_size=3)  # one batch: one trace of the big graph
    features = extractor(np.linspace(-1, 1, 3 * 48 * 48, dtype=np.float32).reshape(3, 48, 48, 1))
    assert extractor.dim == 2048 and features.shape == (3, 2048) and features.dtype == np.float64
    assert np.isfinite(features).all()
    lines = fid.format_scores(fid.Scores(1.0, 0.01, 0.001, 3, 5, 3, True), extractor)
    assert any("not papers" in line for line in lines) and any("read KID" in line for line in lines)


def test_missing_inception_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(fid.FIDError) as info:
        fid.InceptionExtractor.load()
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "keras_home" / "models" / fid.INCEPTION_WEIGHTS_FILE) in message
    assert "--inception_weights" in message and "--extractor classifier" in message
    with pytest.raises(fid.FIDError, match="nope.h5: Inception-v3 ImageNet weights not found"):
        fid.InceptionExtractor.load(tmp_path / "nope.h5")
    (tmp_path / "bad.h5").write_bytes(b"not weights")
    with pytest.raises(fid.FIDError, match="bad.h5: not InceptionV3 'notop' weights"):
        fid.InceptionExtractor.load(tmp_path / "bad.h5")


# ---------------------------------------------------------------------------------------------
# Generated images and the CLI
# ---------------------------------------------------------------------------------------------

def test_load_images_from_npz_and_folder(tmp_path):
    from PIL import Image

    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    np.savez(tmp_path / "uint8.npz", images=faces)
    np.savez(tmp_path / "float.npz", to_float(faces))
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, face in enumerate(faces):
        Image.fromarray(face).save(folder / f"{i}.png")
    for source in ("uint8.npz", "float.npz", "pngs"):
        np.testing.assert_allclose(fid.load_images(tmp_path / source), to_float(faces), atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p / "x.npz", a=np.zeros(3), b=np.zeros(3)), "expected an array named 'images'"),
    (lambda p: np.savez(p / "x.npz", images=np.zeros((2, 32, 32), np.uint8)), r"shape \(N, 48, 48\[, 1\]\)"),
    (lambda p: np.savez(p / "x.npz", images=np.full((2, 48, 48), 3.0)), r"must be finite and lie in \[-1, 1\]"),
    (lambda p: np.savez(p / "x.npz", images=np.zeros((2, 48, 48), np.int64)), "must be uint8"),
    (lambda p: (p / "x.npz").write_bytes(b"garbage"), r"not an \.npz"),
])
def test_load_images_rejects_bad_npz_in_one_line(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(fid.FIDError, match=message) as info:
        fid.load_images(tmp_path / "x.npz")
    assert str(tmp_path / "x.npz") in str(info.value) and "\n" not in str(info.value)


def test_load_images_names_a_bad_image_in_a_folder(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match=r"b.png: image is 64x64, FER2013 faces are 48x48"):
        fid.load_images(tmp_path)
    (tmp_path / "b.png").write_bytes(b"no image")
    with pytest.raises(DataError, match=r"b.png: unreadable image"):
        fid.load_images(tmp_path)


def test_cli_prints_fid_and_kid_with_extractor_and_n_and_reuses_real_statistics(
        synthetic_csv, tiny_classifier_path, tmp_path, capsys, counted):
    happy = load_fer2013(synthetic_csv, cache_dir=tmp_path / "data_cache").split("Training").of_class(3)
    np.savez(tmp_path / "generated.npz", images=happy.images[:20])
    argv = ["--data", str(synthetic_csv), "--split", "PublicTest", "--emotion", "happy",
            "--images", str(tmp_path / "generated.npz"), "--classifier", str(tiny_classifier_path),
            "--stats_dir", str(tmp_path / "stats")]
    assert fid.main(argv) == 0
    out = capsys.readouterr().out
    assert "PublicTest/Happy, N=16 (computed and cached" in out
    assert "FID [classifier features, N_real=16, N_generated=20] = " in out
    assert "KID [classifier features, N_real=16, N_generated=20, 100 subsets of 16] = " in out
    assert counted == [16, 20]
    assert "note: FID is not meaningful with N <= 8" not in out        # 16 faces > 8-d features
    assert fid.main(argv) == 0
    second = capsys.readouterr().out
    assert "PublicTest/Happy, N=16 (cached" in second
    assert counted == [16, 20, 20]            # the repeat computed only the generated side
    fid_line = [line for line in out.splitlines() if line.startswith("FID")]
    assert fid_line == [line for line in second.splitlines() if line.startswith("FID")]


@pytest.mark.parametrize("change, message", [
    ({"--images": "missing.npz"}, "missing.npz: no such file or folder"),
    ({"--emotion": "Bored"}, "unknown emotion 'Bored'"),
    ({"--split": "PrivateTest"}, "split 'PrivateTest' is absent"),
    ({"--classifier": "no_classifier.keras"}, "no_classifier.keras: no expression classifier here"),
    ({"--extractor": "inception", "--inception_weights": "no_weights.h5"}, "no_weights.h5: Inception-v3"),
    ({"--max_real": "1"}, "--max_real must be at least 2"),
])
def test_cli_bad_inputs_give_one_error_line_and_exit_2(synthetic_csv, tiny_classifier_path, tmp_path, capsys,
                                                       change, message):
    np.savez(tmp_path / "generated.npz", images=np.zeros((4, 48, 48), np.uint8))
    options = {"--data": str(synthetic_csv), "--images": str(tmp_path / "generated.npz"),
               "--classifier": str(tiny_classifier_path), "--stats_dir": str(tmp_path / "stats"), **change}
    assert fid.main([item for pair in options.items() for item in pair]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
