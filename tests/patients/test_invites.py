"""An invite code is replaced, not added to: issuing a new one retires the old."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD, PATIENT_PROFILE

API = "/api/v1"


def test_a_new_invite_retires_the_earlier_code(client: Any, clinician: Any) -> None:
    created = clinician.post(
        f"{API}/patients", json={**PATIENT_PROFILE, "care_team_id": clinician.team_ids[0]}
    )
    assert created.status_code == 201
    old_code = created.get_json()["invite_code"]
    reissued = clinician.post(f"{API}/patients/{created.get_json()['id']}/invite")
    assert reissued.status_code == 201
    new_code = reissued.get_json()["invite_code"]

    old = client.post(
        f"{API}/auth/register",
        json={"invite_code": old_code, "email": "old@example.org", "password": PASSWORD},
    )
    assert old.status_code == 422
    assert old.mimetype == "application/problem+json"
    new = client.post(
        f"{API}/auth/register",
        json={"invite_code": new_code, "email": "new@example.org", "password": PASSWORD},
    )
    assert new.status_code == 201, new.get_json()
