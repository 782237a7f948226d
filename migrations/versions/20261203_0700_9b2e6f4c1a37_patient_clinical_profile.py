"""Patient clinical profile: menopausal status, diagnosis date, DLCO, angiomyolipoma,
chylous effusion.

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

def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(
            sa.Column("menopausal_status", sa.String(length=16), server_default="unknown", nullable=False)
        )
        batch.add_column(sa.Column("diagnosis_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("dlco_ml_min_mmhg", sa.Double(), nullable=True))
        batch.add_column(sa.Column("dlco_percent_predicted", sa.Double(), nullable=True))
        batch.add_column(sa.Column("dlco_measured_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("aml_largest_cm", sa.Double(), nullable=True))
        batch.add_column(sa.Column("aml_imaging_date", sa.Date(), nullable=True))
        batch.add_column(
            sa.Column("chylous_effusion", sa.String(length=16), server_default="absent", nullable=False)
        )
        batch.add_column(
            sa.Column(
                "chylous_effusion_symptomatic", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch.add_column(sa.Column("chylous_effusion_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        for name in (
            "chylous_effusion_date",
            "chylous_effusion_symptomatic",
            "chylous_effusion",
            "aml_imaging_date",
            "aml_largest_cm",
            "dlco_measured_on",
            "dlco_percent_predicted",
            "dlco_ml_min_mmhg",
            "diagnosis_date",
            "menopausal_status",
        ):
            batch.drop_column(name)
