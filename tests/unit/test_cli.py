import subprocess
import sys


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "radlabel.cli", *args], capture_output=True, text=True, env=env)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    import os
    env = os.environ | {"RADLABEL_HOME": str(tmp_path), "RADLABEL_ORTHANC_PORT": "99999"}
    done = run("status", env=env)
    assert done.returncode == 2
    assert done.stderr == "radlabel: error: RADLABEL_ORTHANC_PORT='99999' is not a TCP port: give a number between 1 and 65535.\n"


def test_samples_make_writes_a_series_and_truth(tmp_path):
    done = run("samples", "make", str(tmp_path / "out"), "--modality", "mr", "--slices", "4")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").glob("*.dcm"))) == 4 and (tmp_path / "out" / "truth.json").exists()
    bad = run("samples", "make", str(tmp_path / "x"), "--slices", "1")
    assert bad.returncode == 2 and "--slices must be between 2 and 1000" in bad.stderr
