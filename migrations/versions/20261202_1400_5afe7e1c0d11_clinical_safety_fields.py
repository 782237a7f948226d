"""Clinical safety fields: sudden side effects; spirometry device figures, FEV1/FVC
reference and why a session has no reference value.

Revision ID: 5afe7e1c0d11
Revises: 7c41d2e9a0b3
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5afe7e1c0d11"
down_revision: str | None = "7c41d2e9a0b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("side_effect_reports") as batch:
        batch.add_column(sa.Column("sudden", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("spirometry_sessions") as batch:
        for name in ("reported_fev1_l", "reported_fvc_l", "fev1_fvc_predicted", "fev1_fvc_lln", "fev1_fvc_z"):
            batch.add_column(sa.Column(name, sa.Double(), nullable=True))
        batch.add_column(sa.Column("fev1_fvc_below_lln", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("gli_note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("spirometry_sessions") as batch:
        for name in (
            "gli_note",
            "fev1_fvc_below_lln",
            "fev1_fvc_z",
            "fev1_fvc_lln",
            "fev1_fvc_predicted",
            "reported_fvc_l",
            "reported_fev1_l",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("side_effect_reports") as batch:
        batch.drop_column("sudden")
