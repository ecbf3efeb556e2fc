"""score snapshots: a covering index for the trend lines

Revision ID: 5e7a9c1d2b3f
Revises: 1c9d4ca445bf
Create Date: 2026-11-23 16:40:00
"""
from alembic import op


revision = '5e7a9c1d2b3f'
down_revision = '1c9d4ca445bf'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('score_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_score_snapshots_trend', ['account_id', 'day'], unique=False,
                              postgresql_include=['score'])


def downgrade() -> None:
    with op.batch_alter_table('score_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_score_snapshots_trend')
