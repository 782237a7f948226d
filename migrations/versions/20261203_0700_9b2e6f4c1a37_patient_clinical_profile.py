"""Patient clinical profile: menopausal status, diagnosis date, DLCO, angiomyolipoma,
chylous effusion. Alerts of the FEV1-only start rule become alerts of the treatment
start criteria rule that replaced it.

Revision ID: 9b2e6f4c1a37
Revises: 5afe7e1c0d11
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b2e6f4c1a37"
down_revision: str | None = "5afe7e1c0d11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
OLD_RULE = "fev1_below_start_criterion"
NEW_RULE = "treatment_start_criteria"


def _rename_rule(old: str, new: str) -> None:
    # Renamed, an open alert of the old rule is the same episode of the new one: the
    # next evaluation refreshes it instead of resolving it and raising a new one.
    op.execute(
        sa.text(
            "UPDATE alerts SET rule = :new, episode_key = :new, "
            "open_episode_key = CASE WHEN open_episode_key IS NULL THEN NULL ELSE :new END "
            "WHERE rule = :old"
        ).bindparams(old=old, new=new)
    )


# Plain ALTER TABLE, not batch mode: SQLite would copy `patients` to add a column
# with a boolean server default, and dropping the old table with foreign keys on
# deletes every row that cascades from it (alerts, readings, ...).
COLUMNS = (
    sa.Column("menopausal_status", sa.String(length=16), server_default="unknown", nullable=False),
    sa.Column("diagnosis_date", sa.Date(), nullable=True),
    sa.Column("dlco_ml_min_mmhg", sa.Double(), nullable=True),
    sa.Column("dlco_percent_predicted", sa.Double(), nullable=True),
    sa.Column("dlco_measured_on", sa.Date(), nullable=True),
    sa.Column("aml_largest_cm", sa.Double(), nullable=True),
    sa.Column("aml_imaging_date", sa.Date(), nullable=True),
    sa.Column("chylous_effusion", sa.String(length=16), server_default="absent", nullable=False),
    sa.Column("chylous_effusion_symptomatic", sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column("chylous_effusion_date", sa.Date(), nullable=True),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("patients", column)
    _rename_rule(OLD_RULE, NEW_RULE)


def downgrade() -> None:
    _rename_rule(NEW_RULE, OLD_RULE)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in reversed(COLUMNS):
        if sqlite:  # native since SQLite 3.35; batch mode would copy the table
            op.execute(sa.text(f"ALTER TABLE patients DROP COLUMN {column.name}"))
        else:
            op.drop_column("patients", column.name)
