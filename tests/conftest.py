"""Shared fixtures: small synthetic FER2013 data and a judge that knows its seven expressions.

The suite never needs the real FER2013: tests that read ../shared skip when it is absent.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "CCYCLEGAN_CACHE_DIR" not in os.environ:  # keep test data's caches out of datasets/cache/
    import atexit
    import shutil
    import tempfile

    os.environ["CCYCLEGAN_CACHE_DIR"] = tempfile.mkdtemp(prefix="ccyclegan-cache-")
    atexit.register(shutil.rmtree, os.environ["CCYCLEGAN_CACHE_DIR"], ignore_errors=True)

import pathlib  # noqa: E402

import pytest  # noqa: E402

import backend_env  # noqa: E402,F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)

SHARED_FER2013 = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013.csv.gz"


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory) -> pathlib.Path:
    """A synthetic FER2013 CSV: Training 64 faces per emotion, PublicTest 16 per emotion."""
    import synthetic_faces

    path = tmp_path_factory.mktemp("synthetic") / "synthetic_fer2013.csv"
    return synthetic_faces.write_synthetic_csv(path, train_per_class=64, test_per_class=16, seed=0)


@pytest.fixture(scope="session")
def synthetic_judge_path(tmp_path_factory) -> pathlib.Path:
    """A saved `.keras` expression classifier trained on synthetic faces (loadable on every backend)."""
    import synthetic_faces

    return synthetic_faces.train_judge(tmp_path_factory.mktemp("judge") / "synthetic_judge.keras")


@pytest.fixture(scope="session")
def synthetic_judge(synthetic_judge_path):
    import classifier

    return classifier.load_classifier(synthetic_judge_path)


@pytest.fixture(scope="session")
def tiny_generator(synthetic_csv, tmp_path_factory) -> pathlib.Path:
    """The run folder of a tiny T2 trained for 2 steps on synthetic faces (its translations are noise:
    for plumbing tests)."""
    import ccyclegan_t2

    out = tmp_path_factory.mktemp("tiny_t2")
    ccyclegan_t2.main(["--data", str(synthetic_csv), "--output_dir", str(out), "--run_name", "tiny",
                       "--base_filters", "4", "--batch_size", "16", "--max_steps", "2", "--epochs", "1",
                       "--sample_interval", "100"])
    return out / "saved_models" / "tiny"


@pytest.fixture(scope="session")
def shared_fer2013() -> pathlib.Path:
    if not SHARED_FER2013.exists():
        pytest.skip(f"{SHARED_FER2013} is absent (only the development machines have it)")
    return SHARED_FER2013
