import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ohif_screenshots(tmp_path_factory):
    """One folder for every OHIF end-to-end screenshot of the session (printed by the tests that write there)."""
    return tmp_path_factory.mktemp("ohif-screenshots")


TEMPLATES = __import__("pathlib").Path(__file__).resolve().parents[2] / "protocol_templates"


def protocol_variant(settings, template: str, protocol_id: str, description: str | None = None, provision=True,
                     overrides: dict | None = None, **selection):
    """A shipped template under another id, selecting only this test's series; provisioned.

    ``overrides`` replaces whole top-level sections (``{"qa": {...}}``)."""
    import yaml

    from connectors.provision import Provisioner
    from radlabel.protocol import parse_template

    data = yaml.safe_load((TEMPLATES / template).read_text())
    data["id"] = protocol_id
    if description is not None:
        data["selection"]["series_description"] = description
    data["selection"].update(selection)
    data.update(overrides or {})
    protocol = parse_template(yaml.safe_dump(data, sort_keys=False))
    if provision:
        Provisioner(settings).provision(protocol)
    return protocol
