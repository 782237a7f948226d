import uuid


def test_patient_uploads_and_reads_back_spirometry(patient):
    item = {
        "client_id": str(uuid.uuid4()),
        "measured_at": "2026-03-01T08:30:00+01:00",
        "fev1_l": 2.5,
        "fvc_l": 3.0,
    }
    resp = patient.post("/api/v1/patients/me/spirometry", json={"items": [item]})
    assert resp.status_code == 200, resp.get_json()
    [result] = resp.get_json()["results"]
    assert result["status"] == "created"
    got = patient.get("/api/v1/patients/me/spirometry").get_json()["items"]
    assert got[0]["measured_at"] == "2026-03-01T08:30:00+01:00"
