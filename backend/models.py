"""Imports every model module, so that Base.metadata knows every table
(Alembic autogenerate, `alembic check`, tests)."""

from backend import audit  # noqa: F401
from backend.alerts import models as alert_models  # noqa: F401
from backend.auth import models as auth_models  # noqa: F401
from backend.db import Base
from backend.notify import models as notify_models  # noqa: F401
from backend.patients import models as patient_models  # noqa: F401
from backend.scheduler import lease as scheduler_models  # noqa: F401  (scheduler_lease, job_state)
from backend.streams.events import models as event_models  # noqa: F401
from backend.streams.medication import models as medication_models  # noqa: F401
from backend.streams.side_effects import models as side_effect_models  # noqa: F401
from backend.streams.spirometry import models as spirometry_models  # noqa: F401
from backend.streams.troughs import models as trough_models  # noqa: F401
from backend.triage import models as triage_models  # noqa: F401

metadata = Base.metadata
