"""Mixed workload for `scripts/load/run_load.py` (locust, headless, loopback only).

Patients (most users): upload small batches of spirometry sessions and doses as
the phone app does after a day or two offline, read their recent sessions and
poll the /changes sync feed with their cursor. Clinicians: list their patients,
list open alerts, open one patient's sessions.

Accounts and access tokens come from the JSON file named by
LAMTRACK_LOAD_ACCOUNTS (written by run_load.py), so the run measures the data
paths, not argon2 password checks.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

from locust import HttpUser, between, task

ACCOUNTS = json.loads(open(os.environ["LAMTRACK_LOAD_ACCOUNTS"]).read())  # noqa: SIM115
_patients = itertools.cycle(ACCOUNTS["patients"])
_clinicians = itertools.cycle(ACCOUNTS["clinicians"])


def _session(days_ago: float) -> dict[str, object]:
    fev1 = round(random.uniform(1.3, 2.6), 3)
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "client_id": str(uuid.uuid4()),
        "measured_at": at.isoformat(timespec="seconds"),
        "setting": "home",
        "fev1_l": fev1,
        "fvc_l": round(fev1 / 0.72, 3),
        "device": {"manufacturer": "Load", "model": "L1", "serial": "L-1"},
    }


class Patient(HttpUser):
    weight = 9
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        account = next(_patients)
        self.pid = account["patient_id"]
        self.headers = {"Authorization": f"Bearer {account['token']}"}
        self.cursor = "0"

    @task(3)
    def upload_sessions(self) -> None:
        items = [_session(random.uniform(0, 3)) for _ in range(random.randint(1, 4))]
        with self.client.post(
            f"/api/v1/patients/{self.pid}/spirometry",
            json={"items": items},
            headers=self.headers,
            name="POST spirometry",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200 or any(r["status"] != "created" for r in resp.json()["results"]):
                resp.failure(f"{resp.status_code} {resp.text[:200]}")

    @task(2)
    def upload_dose(self) -> None:
        item = {
            "client_id": str(uuid.uuid4()),
            "status": "taken",
            "dose_mg": 2.0,
            "taken_at": (datetime.now(UTC) - timedelta(hours=random.uniform(0, 24))).isoformat(
                timespec="seconds"
            ),
        }
        self.client.post(
            f"/api/v1/patients/{self.pid}/doses",
            json={"items": [item]},
            headers=self.headers,
            name="POST doses",
        )

    @task(2)
    def read_sessions(self) -> None:
        self.client.get(
            f"/api/v1/patients/{self.pid}/spirometry?limit=50", headers=self.headers, name="GET spirometry"
        )

    @task(3)
    def sync(self) -> None:
        resp = self.client.get(
            f"/api/v1/patients/{self.pid}/changes?cursor={self.cursor}&limit=100",
            headers=self.headers,
            name="GET changes",
        )
        if resp.status_code == 200:
            self.cursor = resp.json()["next_cursor"]


class Clinician(HttpUser):
    weight = 1
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        account = next(_clinicians)
        self.headers = {"Authorization": f"Bearer {account['token']}"}
        self.patient_ids = account["patient_ids"]

    @task(3)
    def patients(self) -> None:
        self.client.get("/api/v1/patients?limit=100", headers=self.headers, name="GET patients")

    @task(3)
    def alerts(self) -> None:
        self.client.get("/api/v1/alerts?limit=100", headers=self.headers, name="GET alerts")

    @task(1)
    def one_patient(self) -> None:
        pid = random.choice(self.patient_ids)
        self.client.get(
            f"/api/v1/patients/{pid}/spirometry?limit=100",
            headers=self.headers,
            name="GET patient spirometry (clinician)",
        )
