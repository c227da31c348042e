"""The Label Studio lookups every stage shares: users by email (one scan per client), SDK objects as dicts."""

from __future__ import annotations

from types import SimpleNamespace

from connectors.label_studio import as_dict, user_id


class FakeUsers:
    def __init__(self, *emails):
        self.users = [SimpleNamespace(id=n + 1, email=e) for n, e in enumerate(emails)]
        self.scans = 0

    def list(self):
        self.scans += 1
        return list(self.users)

    def create(self, email, username):
        self.users.append(SimpleNamespace(id=len(self.users) + 1, email=email, username=username))
        return self.users[-1]


class FakeClient:
    def __init__(self, *emails):
        self.users = FakeUsers(*emails)


def test_a_user_is_found_in_any_case_and_listed_once_per_client():
    ls = FakeClient("a@x.org", "Dr.B@x.org")
    assert user_id(ls, "dr.b@X.org") == 2 and user_id(ls, "DR.B@x.org ") == 2
    assert ls.users.scans == 1
    assert user_id(FakeClient("a@x.org", "dr.b@x.org"), "dr.b@x.org") == 2  # another client: its own scan


def test_a_missing_user_is_created_only_when_asked_and_then_known():
    ls = FakeClient("a@x.org")
    assert user_id(ls, "new@x.org") is None and len(ls.users.users) == 1
    assert user_id(ls, "new@x.org", create_as="new") == 2
    assert ls.users.users[-1].username == "new" and user_id(ls, "new@x.org", create_as="new") == 2
    assert len(ls.users.users) == 2


def test_sdk_objects_and_dicts_become_plain_dicts():
    class Model:
        def model_dump(self):
            return {"id": 7}

    assert as_dict({"id": 1}) == {"id": 1} and as_dict(Model()) == {"id": 7}
