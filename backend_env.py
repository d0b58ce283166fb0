"""The environment Keras' backends read when they load: import this before keras (every entry point does).

- oneDNN on for TensorFlow on every x86 CPU. TensorFlow turns its oneDNN kernels on by itself only on
  CPUs with AVX-512-class features; elsewhere (most AMD EPYC and older Xeon machines: AVX2 only) it
  falls back to Eigen, whose transposed convolutions are 10-50x slower (bench/bench_train.py shows
  both paths). A user's own TF_ENABLE_ONEDNN_OPTS wins: `TF_ENABLE_ONEDNN_OPTS=0` gives the Eigen path.
- TensorFlow's native start-up notices (absl, cpu_feature_guard, the oneDNN banner) go to the C-level
  stderr before any log setting is read, so TensorFlow is imported here with that stream muted;
  Python errors from the import still surface. TF_CPP_MIN_LOG_LEVEL (default 3 here) quiets the rest:
  at level 2, every training run printed two native "E0000" lines that read like a crash and are not
  (grappler's remapper declining a fusion; oneDNN's note that int32 ops run on Eigen). A real failure
  still raises a Python exception with its message; `TF_CPP_MIN_LOG_LEVEL=0` shows everything.
"""
import contextlib
import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def native_stderr_muted():
    """Send what C/C++ code writes to file descriptor 2 to /dev/null for the block's duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _backend():
    return os.environ.get("KERAS_BACKEND", "tensorflow")


if _backend() == "tensorflow" and "tensorflow" not in sys.modules:
    with native_stderr_muted():
        import tensorflow  # noqa: F401  (loaded here, muted, so that keras finds it loaded)
