"""Every command answers --help and a bad flag before Keras (and its backend) loads.

Importing Keras imports TensorFlow, seconds on a small machine; these tests check that the import
does not happen, not how long it takes.
"""
import json
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ENTRY_POINTS = ["ccyclegan_t1.py", "ccyclegan_t2.py", "ccyclegan_t3.py", "evaluate.py", "fid.py", "sweep.py",
                "classifier.py", "translate.py", "compare_runs.py"]
# Runs a script as __main__ and reports, as its last line, its exit status and which heavy modules
# it imported.
WRAPPER = """
import json, runpy, sys
script, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = script
try:
    runpy.run_path(script, run_name="__main__")
    status = 0
except SystemExit as exit:
    status = exit.code
print(json.dumps({"status": status, "imported": [m for m in ("keras", "tensorflow", "jax", "torch",
                                                               "keras_tuner") if m in sys.modules]}))
"""


def run_script(script, *args):
    result = subprocess.run([sys.executable, "-c", WRAPPER, script, *args], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report, result


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_help_answers_without_importing_keras(script):
    report, result = run_script(script, "--help")
    assert report["status"] == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
    assert report["imported"] == []


@pytest.mark.parametrize("script", ["ccyclegan_t1.py", "ccyclegan_t3.py", "classifier.py"])
def test_help_shows_every_default(script):
    """The training commands' --help is the record of what a bare command runs with."""
    _, result = run_script(script, "--help")
    entries = re.split(r"\n  (?=-)", result.stdout.split("options:")[-1])[1:]
    assert len(entries) > 5
    assert [entry.split()[0] for entry in entries
            if "(default:" not in entry and not entry.startswith("-h")] == []


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_a_bad_flag_is_refused_without_importing_keras(script):
    report, result = run_script(script, "--no_such_flag")
    assert report["status"] == 2
    assert "error" in result.stderr.strip().splitlines()[-1]
    assert report["imported"] == []
