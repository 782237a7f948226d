"""troughs: flag a result whose last-dose time is unknown

Revision ID: 7c41d2e9a0b3
Revises: 7a3c9e21b4d0
Create Date: 2026-12-02 13:45:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c41d2e9a0b3"
down_revision: str | None = "7a3c9e21b4d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trough_results") as batch:
        batch.add_column(
            sa.Column("last_dose_unknown", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Stored results without hours since the last dose had no dose time to go on.
    op.execute(
        sa.text(
            "UPDATE trough_results SET last_dose_unknown = :yes WHERE hours_since_last_dose IS NULL"
        ).bindparams(yes=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("trough_results") as batch:
        batch.drop_column("last_dose_unknown")
