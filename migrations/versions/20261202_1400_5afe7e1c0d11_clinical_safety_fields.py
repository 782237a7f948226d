"""Clinical safety fields: side-effect reports say whether it came on suddenly.

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


def downgrade() -> None:
    with op.batch_alter_table("side_effect_reports") as batch:
        batch.drop_column("sudden")
