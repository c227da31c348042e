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


def test_validate_reports_each_series_and_exits_1_on_quarantine(tmp_path):
    import json

    from radlabel.phantom import make_ct_study

    make_ct_study(seed=61, slices=6, size=32).write(tmp_path / "in" / "good")
    gappy = make_ct_study(seed=62, slices=6, size=32)
    gappy.datasets = gappy.datasets[:2] + gappy.datasets[4:]
    gappy.write(tmp_path / "in" / "gappy")
    for extra in sorted((tmp_path / "in" / "gappy").glob("*.dcm")):
        if not any(extra.name.startswith(str(ds.SOPInstanceUID)) for ds in gappy.datasets):
            extra.unlink()
    done = run("validate", str(tmp_path / "in"), "--json")
    assert done.returncode == 1, done.stderr
    report = {r["series_instance_uid"]: r for r in json.loads(done.stdout)["series"]}
    assert report[gappy.series_uid]["reasons"] == ["missing_slices"]
    assert report[make_ct_study(seed=61, slices=6, size=32).series_uid]["ok"] is True
    assert run("validate", str(tmp_path / "nowhere")).stderr.startswith("radlabel: error: ")


def test_deid_writes_a_clean_copy_and_never_overwrites(tmp_path):
    import json
    import os

    import pydicom

    from radlabel.phantom import FakePatient, make_ct_study

    make_ct_study(seed=63, slices=3, size=32).write(tmp_path / "in")
    env = os.environ | {"RADLABEL_HOME": str(tmp_path / "home")}
    done = run("deid", str(tmp_path / "in"), str(tmp_path / "out"), "--option", "retain_patient_characteristics",
               "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["written"] == 3 and summary["changed"]["uid_replaced"] >= 9
    files = list((tmp_path / "out").rglob("*.dcm"))
    assert len(files) == 3
    text = "".join(str(pydicom.dcmread(f)) for f in files)
    assert not any(value in text for value in FakePatient.from_seed(63).phi_strings())
    again = run("deid", str(tmp_path / "in"), str(tmp_path / "out"), env=env)
    assert again.returncode == 2 and "is not empty" in again.stderr
    bad = run("deid", str(tmp_path / "in"), str(tmp_path / "out2"), "--option", "keep_everything", env=env)
    assert bad.returncode == 2 and "--option" in bad.stderr and not (tmp_path / "out2").exists()
