import json

import pytest

from radlabel.errors import RadlabelError
from radlabel.settings import SECRET_NAMES, load_settings, redact


def test_secrets_are_made_once_with_mode_0600(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path / "home"))
    settings = load_settings()
    first = settings.secrets()
    assert set(first) == set(SECRET_NAMES) and len(set(first.values())) == len(SECRET_NAMES)
    assert (settings.secrets_file.stat().st_mode & 0o777) == 0o600
    assert load_settings().secrets() == first
    assert redact(first["webhook_secret"]) not in ("", first["webhook_secret"])


def test_a_damaged_secrets_file_is_reported_not_replaced(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    (tmp_path / "secrets.json").write_text("{oops")
    with pytest.raises(RadlabelError, match="secrets.json is not readable JSON"):
        load_settings().secrets()
    assert (tmp_path / "secrets.json").read_text() == "{oops"


def test_port_overrides_are_checked_and_remembered(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    monkeypatch.setenv("RADLABEL_VIEWER_PORT", "http")
    with pytest.raises(RadlabelError, match="RADLABEL_VIEWER_PORT='http' is not a TCP port"):
        load_settings()
    monkeypatch.setenv("RADLABEL_VIEWER_PORT", "3999")
    settings = load_settings()
    settings.save()
    monkeypatch.delenv("RADLABEL_VIEWER_PORT")
    assert load_settings().ports["viewer"] == 3999
    assert json.loads((tmp_path / "settings.json").read_text())["ports"]["viewer"] == 3999
