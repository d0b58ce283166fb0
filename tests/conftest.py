"""Shared fixtures: small synthetic FER2013 data and a judge that knows its seven expressions.

The suite never needs the real FER2013: tests that read ../shared skip when it is absent.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keep the tests' caches (data: datasets/cache/, real-face features: saved_models/fid_stats/) out of
# the checkout; subprocesses inherit the variables.
for _variable, _prefix in (("CCYCLEGAN_CACHE_DIR", "ccyclegan-cache-"), ("CCYCLEGAN_FID_STATS_DIR", "ccyclegan-fid-")):
    if _variable not in os.environ:
        import atexit
        import shutil
        import tempfile

        os.environ[_variable] = tempfile.mkdtemp(prefix=_prefix)
        atexit.register(shutil.rmtree, os.environ[_variable], ignore_errors=True)

import pathlib  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

import backend_env  # noqa: E402,F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)

REPO = pathlib.Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def tiny_classifier_path(tmp_path_factory) -> pathlib.Path:
    """An untrained, tiny expression classifier: enough for plumbing (its features are deterministic)."""
    import keras

    import classifier

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("tiny_classifier") / "classifier.keras"
    classifier.build_classifier(width=4, num_blocks=1, dense_units=8, augment=False).save(path)
    return path


# ---------------------------------------------------------------------------------------------
# Helpers for tests that start processes (tests/test_distribute.py, tests/test_sweep.py)
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def subprocess_env():
    """env(**extra): this process's environment without cluster settings, plus `extra`."""
    return _subprocess_env


@pytest.fixture
def free_ports():
    """free_ports(count): that many free TCP ports on 127.0.0.1."""
    return _free_ports


@pytest.fixture
def run_bounded():
    """run_bounded([(argv, env, log path), ...], timeout): see `_run_bounded`."""
    return _run_bounded


def _subprocess_env(**extra):
    """This process's environment without cluster settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("KERASTUNER_")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), **extra}


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_bounded(commands, timeout):
    """Start every (argv, env, log path) at once; wait up to `timeout` s in all; kill what is left.
    Returns the exit statuses (None: killed on timeout)."""
    processes = []
    try:
        for argv, env, log in commands:
            with open(log, "w") as output:
                processes.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=output,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
        statuses = []
        for process in processes:
            try:
                statuses.append(process.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                statuses.append(None)
                break
        return statuses + [None] * (len(processes) - len(statuses))
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def photo():
    """A real photograph's face (matplotlib's Grace Hopper), cropped the way translate.py crops
    FER2013 faces: 48x48 grey uint8."""
    from matplotlib import cbook

    import translate

    portrait = pathlib.Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return translate.find_faces(translate.read_photo(portrait))[1][0]
