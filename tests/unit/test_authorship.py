"""Verified authorship (issue 17): an annotation counts as a reader's read only when radlabel's own records
agree with who saved it. Label Studio is stood in for by a fake with the fields the real one returns
(``completed_by`` as claimed by the client, ``updated_by`` as Label Studio recorded the authenticated saver)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from connectors.authorship import Authorship, post_read, unverified_reads
from connectors.database import state_database
from connectors.readers import ReaderRegistry
from radlabel.adjudication.reads import AuthorshipRecords, Vouched, authorship_problem, result_fingerprint
from radlabel.audit import audit_log
from radlabel.settings import Settings

SERVICE, A, B, SENIOR, CONSENSUS, OUTSIDER = 1, 11, 12, 20, 99, 50
REGION = [{"id": "r1", "type": "choices", "from_name": "findings", "to_name": "ct", "value": {"choices": ["nodule"]}}]


def annotation(id_, claimed, saved_by, result=REGION, **extra):
    return {"id": id_, "completed_by": claimed, "updated_by": saved_by, "result": result} | extra


def records(vouched=None, eligible=None):
    return AuthorshipRecords({SERVICE}, {A, B, SENIOR}, vouched or {}, eligible)


# -- the rule ------------------------------------------------------------------------------------------------
def test_a_reader_saving_their_own_read_is_verified():
    assert authorship_problem(annotation(1, A, A), 7, records()) is None
    assert authorship_problem(annotation(1, A, {"id": A}), 7, records()) is None  # a user object, as some endpoints give


def test_a_read_forged_in_another_readers_name_is_not_verified():
    problem = authorship_problem(annotation(2, A, B), 7, records())
    assert problem == "saved by reader-12 in the name of reader-11"


def test_a_read_forged_in_the_consensus_users_name_is_not_verified():
    assert "in the name of reader-99" in authorship_problem(annotation(3, CONSENSUS, B, ground_truth=True), 7, records())


def test_an_unregistered_user_saving_in_their_own_name_is_not_a_read():
    assert authorship_problem(annotation(4, OUTSIDER, OUTSIDER), 7, records()) == \
        "reader-50 is not an active registered reader"


def test_the_service_account_counts_only_for_reads_radlabel_recorded_saving():
    forged = annotation(5, A, SERVICE)
    assert "radlabel has no record of saving it" in authorship_problem(forged, 7, records())
    vouched = {5: Vouched(7, A, result_fingerprint(REGION))}
    assert authorship_problem(forged, 7, records(vouched)) is None
    assert "not for reader-12" in authorship_problem(annotation(5, B, SERVICE), 7, records(vouched))
    assert "in task 7" in authorship_problem(forged, 8, records(vouched))  # the record is of another task
    changed = annotation(5, A, SERVICE, result=REGION + REGION)
    assert authorship_problem(changed, 7, records(vouched)) == "its labels changed after radlabel saved it"


def test_no_result_or_no_saver_is_not_a_read():
    # Label Studio records no saver for a result-less save, and takes ``updated_by`` from the body then
    assert "without a result" in authorship_problem(annotation(6, A, A, result=None), 7, records())
    assert authorship_problem(annotation(6, A, None), 7, records()) == "Label Studio recorded no user who saved it"
    assert authorship_problem(annotation(6, A, A, result=[]), 7, records()) is None  # "no findings" is a read


def test_eligibility_limits_who_may_read_a_task():
    assert authorship_problem(annotation(8, B, B), 7, records(eligible={A})) == "reader-12 is not eligible to read this task"
    assert authorship_problem(annotation(8, A, A), 7, records(eligible={A})) is None


# -- the records and the set-aside table ------------------------------------------------------------------------
class FakeAnnotations:
    def __init__(self):
        self.created = []

    def create(self, id, result, completed_by, **extra):
        self.created.append((id, completed_by))
        return SimpleNamespace(id=500 + len(self.created), result=result)


@pytest.fixture
def env(tmp_path):
    settings = Settings(home=tmp_path / "home", tools=tmp_path / "tools", ports={"label_studio": 8080, "viewer": 3000})
    settings.home.mkdir()
    registry = ReaderRegistry.from_settings(settings)
    for email, user, tier in (("a@hospital.org", A, "radiologist"), ("b@hospital.org", B, "radiologist"),
                              ("s@hospital.org", SENIOR, "senior")):
        registry.issue(email, tier, user)
    ls = SimpleNamespace(users=SimpleNamespace(whoami=lambda: SimpleNamespace(id=SERVICE)), annotations=FakeAnnotations())
    return SimpleNamespace(settings=settings, ls=ls, registry=registry,
                           authorship=Authorship(settings, ls, state_database(settings)))


def test_forged_reads_are_set_aside_once_with_their_reason_and_audited(env):
    honest, forged = annotation(1, A, A), annotation(2, A, B)
    for _ in range(2):  # the task is looked at again: one row, one audit entry
        assert env.authorship.verified(7, [honest, forged], "proto") == [honest]
    rows = unverified_reads(env.settings)
    assert [(r["task"], r["annotation"], r["claimed_author"], r["saved_by"], r["protocol"]) for r in rows] == \
        [(7, 2, "reader-11", "reader-12", "proto")]
    assert rows[0]["reason"] == "saved by reader-12 in the name of reader-11"
    entries = [e for e in audit_log(env.settings).entries() if e["action"] == "read_unverified"]
    assert len(entries) == 1 and entries[0]["objects"]["annotation"] == 2
    assert "@" not in json.dumps(rows) + json.dumps(entries)  # pseudonyms, never emails
    assert unverified_reads(env.settings, "another_protocol") == []


def test_reads_radlabel_saves_are_vouched_even_before_label_studio_answers(env):
    annotation_id = post_read(env.settings, env.ls, 7, A, REGION, "simulated")
    assert env.ls.annotations.created == [(7, A)]
    saved = annotation(annotation_id, A, SERVICE)
    assert env.authorship.verified(7, [saved], "proto") == [saved]
    # the webhook of the save can be handled before the id is recorded: the pending record is claimed
    from connectors.authorship import vouch

    vouch(env.settings, 8, B, REGION, "ohif")
    early = annotation(900, B, SERVICE)
    assert env.authorship.verified(8, [early], "proto") == [early]
    # ... once only: a second annotation with the same labels is not vouched by the same record
    assert env.authorship.verified(8, [annotation(901, B, SERVICE)], "proto") == []
    assert [r["annotation"] for r in unverified_reads(env.settings)] == [901]


def test_a_revoked_readers_saves_stop_counting_and_count_again_when_registered_again(env):
    read = annotation(3, A, A)
    env.registry.revoke("a@hospital.org")
    assert env.authorship.verified(7, [read], "proto") == []
    env.registry.issue("a@hospital.org", "radiologist", A)
    assert env.authorship.verified(7, [read], "proto") == [read]
    assert unverified_reads(env.settings) == []  # no longer listed as set aside


def test_the_adjudicator_counts_only_verified_reads(env):
    from connectors.adjudicate import Adjudicator
    from radlabel.protocol import load_template
    from tests.integration.conftest import TEMPLATES

    protocol = load_template(TEMPLATES / "ct-lung-nodules.yaml")
    adjudicator = Adjudicator.__new__(Adjudicator)
    adjudicator.settings, adjudicator.authorship, adjudicator._consensus_user = env.settings, env.authorship, CONSENSUS
    adjudicator._quality_desk = SimpleNamespace(calibration=SimpleNamespace(counts=lambda protocol, reader: True))
    task = SimpleNamespace(id=7, annotations=[annotation(1, A, A), annotation(2, B, A),  # a saves in b's name
                                              annotation(3, CONSENSUS, B, ground_truth=False),
                                              annotation(4, SENIOR, SENIOR, was_cancelled=True)])
    latest = adjudicator._latest_annotations(task, protocol)
    assert list(latest) == [A]
    assert {r["annotation"] for r in unverified_reads(env.settings)} == {2, 3}


# -- shown to the admin -------------------------------------------------------------------------------------------
def run_cli(home, *args, **extra_env):
    env = os.environ | {"RADLABEL_HOME": str(home)} | extra_env
    return subprocess.run([sys.executable, "-m", "radlabel.cli", *args], capture_output=True, text=True, env=env)


def test_the_reads_unverified_command_lists_them(env):
    env.authorship.verified(7, [annotation(2, A, B)], "proto")
    shown = run_cli(env.settings.home, "reads", "unverified", "--json")
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)["unverified_reads"]
    assert row["annotation"] == 2 and row["claimed_author"] == "reader-11" and row["saved_by"] == "reader-12"
    plain = run_cli(env.settings.home, "reads", "unverified")
    assert "claimed reader-11" in plain.stdout and "1 unverified read(s)" in plain.stdout


def test_the_reads_unverified_command_prints_json_on_errors(tmp_path):
    shown = run_cli(tmp_path / "home", "reads", "unverified", "--json", RADLABEL_ORTHANC_PORT="99999")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert json.loads(shown.stdout)["unverified_reads"] == [] and json.loads(shown.stdout)["error"]


def test_the_qa_report_shows_unverified_reads():
    from radlabel.protocol import load_template
    from radlabel.qa.report import build_figures, render_html
    from tests.integration.conftest import TEMPLATES

    row = {"task": 7, "annotation": 2, "protocol": "p", "claimed_author": "reader-11", "saved_by": "reader-12",
           "reason": "saved by reader-12 in the name of reader-11", "at": "2026-01-01T00:00:00+00:00"}
    figures = build_figures(load_template(TEMPLATES / "ct-liver-lesions.yaml"), scores=[], certifications=[], tiers={},
                            decisions=[], profiles=[], reviews=[], counts={}, unverified=[row])
    assert figures["counts"]["unverified_reads"] == 1 and figures["unverified_reads"] == [row]
    assert any("1 read(s) not counted" in alert for alert in figures["alerts"])
    page = render_html(figures)
    assert "Reads not counted (author not verified)" in page and "saved by reader-12 in the name of reader-11" in page


# -- both doors' credentials (radlabel readers add / revoke / list) ---------------------------------------------
def test_readers_add_hands_out_both_doors_credentials_and_revoke_closes_both(env, monkeypatch):
    from connectors import readers

    monkeypatch.setattr(readers, "label_studio_user", lambda settings, email, adapters=None: 31)
    sealed = []
    credentials = readers.issue_credentials(env.settings, "Dr.New@Hospital.org", "radiologist",
                                            seal_account=lambda s, user: sealed.append(user))
    assert credentials["reader"] == "reader-31" and sealed == [31]  # the Label Studio user opens nothing
    token = credentials["ohif_token"]
    assert credentials["label_studio"] == {"url": env.settings.url("viewer") + "/radlabel/editor/",
                                           "email": "dr.new@hospital.org", "token": token}  # radlabel's gateway
    assert token.startswith("rlr_") and env.registry.authenticate(token).pseudonym == "reader-31"
    path = readers.write_credentials(env.settings, credentials)
    assert path.stat().st_mode & 0o777 == 0o600 and json.loads(path.read_text()) == credentials
    assert token not in audit_log(env.settings).path.read_text()  # secrets never in the audit trail

    readers.revoke_reader(env.settings, "dr.new@hospital.org", seal_account=lambda s, user: sealed.append(user))
    assert sealed == [31, 31] and env.registry.authenticate(token) is None
    actions = [e["action"] for e in audit_log(env.settings).entries()]
    assert "reader_token_revoked" in actions and actions.count("reader_label_studio_user_sealed") == 2


def test_readers_add_registers_nobody_when_the_label_studio_user_cannot_be_sealed(env, monkeypatch):
    from connectors import readers
    from radlabel.errors import RadlabelError

    monkeypatch.setattr(readers, "label_studio_user", lambda settings, email, adapters=None: 32)

    def down(settings, user):
        raise RadlabelError("Label Studio is not installed at /x: run `radlabel install`.")

    with pytest.raises(RadlabelError, match="reader-32 was not registered: their Label Studio user could not be sealed"):
        readers.issue_credentials(env.settings, "late@hospital.org", "radiologist", seal_account=down)
    assert [r.active for r in env.registry.readers() if r.ls_user_id == 32] == [False]


def test_revoke_says_when_the_label_studio_door_is_still_open_and_can_be_repeated(env):
    from connectors import readers
    from radlabel.errors import RadlabelError

    token = env.registry.issue("c@hospital.org", "radiologist", 13)

    def down(settings, user):
        raise RadlabelError("Label Studio is not installed at /x: run `radlabel install`.")

    with pytest.raises(RadlabelError, match="token of reader-13 is revoked .* but its Label Studio user could not be"):
        readers.revoke_reader(env.settings, "c@hospital.org", seal_account=down)
    assert env.registry.authenticate(token) is None  # the OHIF door closed first, at once
    closed = []
    readers.revoke_reader(env.settings, "c@hospital.org", seal_account=lambda s, user: closed.append(user))
    assert closed == [13]
    with pytest.raises(RadlabelError, match="nobody@hospital.org is not a registered reader"):
        readers.revoke_reader(env.settings, "nobody@hospital.org", seal_account=lambda s, user: None)


def test_readers_commands_answer_bad_input_in_one_sentence_and_json_with_json(env):
    home = env.settings.home
    bad_email = run_cli(home, "readers", "add", "not-an-email", "--tier", "radiologist", "--json")
    assert bad_email.returncode == 2 and "is not an email address" in json.loads(bad_email.stdout)["error"]
    bad_tier = run_cli(home, "readers", "add", "x@hospital.org", "--tier", "boss", "--json")
    assert bad_tier.returncode == 2 and json.loads(bad_tier.stdout)["error"] == \
        "tier 'boss' is not one of technician, radiologist, senior."
    plain = run_cli(home, "readers", "add", "x@hospital.org", "--tier", "boss")
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    unknown = run_cli(home, "readers", "revoke", "nobody@hospital.org", "--json")
    assert unknown.returncode == 2 and "not a registered reader" in json.loads(unknown.stdout)["error"]
    listed = run_cli(home, "readers", "list", "--json")
    assert {r["reader"] for r in json.loads(listed.stdout)} == {"reader-11", "reader-12", "reader-20"}
    assert "reader-20" in run_cli(home, "readers", "list").stdout


def test_a_record_claimed_by_the_webhook_first_does_not_break_the_save(env):
    from connectors.authorship import vouch, vouched_as

    stale = vouch(env.settings, 9, A, REGION, "ohif")  # an earlier attempt whose save never answered
    record = vouch(env.settings, 9, A, REGION, "ohif")
    saved = annotation(950, A, SERVICE)
    assert env.authorship.verified(9, [saved], "proto") == [saved]  # the webhook claims the oldest record
    vouched_as(env.settings, record, 950)  # then Label Studio's answer arrives: no clash, still one record
    with state_database(env.settings).connect() as db:
        rows = db.execute("SELECT id FROM vouched_reads WHERE annotation_id=950").fetchall()
    assert rows == [(stale,)]
    assert env.authorship.verified(9, [saved], "proto") == [saved]


def test_readers_registered_together_are_sealed_in_one_go_or_not_registered_at_all(env, monkeypatch):
    from connectors import readers
    from radlabel.errors import RadlabelError

    users = iter([41, 42, 43, 44])
    monkeypatch.setattr(readers, "label_studio_user", lambda settings, email, adapters=None: next(users))
    calls = []
    people = [("one@hospital.org", "radiologist"), ("two@hospital.org", "senior")]
    credentials = readers.register_readers(env.settings, people, seal_accounts=lambda s, ids: calls.append(list(ids)))
    assert calls == [[41, 42]]  # one start of Label Studio's Django for both
    assert [c["reader"] for c in credentials] == ["reader-41", "reader-42"]
    assert [env.registry.authenticate(c["ohif_token"]).pseudonym for c in credentials] == ["reader-41", "reader-42"]

    def down(settings, ids):
        raise RadlabelError("Label Studio is not installed at /x: run `radlabel install`.")

    people = [("three@hospital.org", "radiologist"), ("four@hospital.org", "radiologist")]
    with pytest.raises(RadlabelError, match="reader-43, reader-44 were not registered: their Label Studio users could not"):
        readers.register_readers(env.settings, people, seal_accounts=down)
    assert {r.ls_user_id: r.active for r in env.registry.readers() if r.ls_user_id in (43, 44)} == {43: False, 44: False}


def test_a_reader_that_cannot_be_added_withdraws_the_ones_added_before_it(env, monkeypatch):
    from connectors import readers
    from radlabel.errors import RadlabelError

    monkeypatch.setattr(readers, "label_studio_user", lambda settings, email, adapters=None: 51)
    sealed = []
    with pytest.raises(RadlabelError, match="'no-at-sign' is not an email address"):
        readers.register_readers(env.settings, [("five@hospital.org", "radiologist"), ("no-at-sign", "radiologist")],
                                 seal_accounts=lambda s, ids: sealed.append(ids))
    assert sealed == [] and [r.active for r in env.registry.readers() if r.ls_user_id == 51] == [False]
