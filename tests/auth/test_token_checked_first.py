"""Without a valid token every operation that needs one answers 401, before the
body or query is looked at: a caller who is not signed in learns nothing of what
an operation would accept."""

from __future__ import annotations

import uuid

import pytest
import yaml
from flask.testing import FlaskClient

from backend.config import REPO_ROOT

SPEC = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
SECURED = [
    (method.upper(), path)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "patch", "delete") and operation.get("security") != []
]


@pytest.mark.parametrize("bad_token", [None, "Bearer not-a-token"])
@pytest.mark.parametrize(("method", "path"), SECURED)
def test_an_invalid_body_without_a_token_is_401(
    client: FlaskClient, method: str, path: str, bad_token: str | None
) -> None:
    url = path.replace("{pid}", "me").replace("{team_id}", str(uuid.uuid4()))
    url = url.replace("{alert_id}", str(uuid.uuid4())).replace("{record_id}", str(uuid.uuid4()))
    headers = {"Authorization": bad_token} if bad_token else {}
    resp = client.open(
        url + "?unknown=1", method=method, json={"timezone": "", "items": "x"}, headers=headers
    )
    assert resp.status_code == 401, (method, path, resp.get_json())
    assert resp.mimetype == "application/problem+json"
