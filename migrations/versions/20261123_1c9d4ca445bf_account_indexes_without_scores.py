"""account indexes without scores: score updates stay HOT

Revision ID: 1c9d4ca445bf
Revises: c5e1a2b3d4f6
Create Date: 2026-11-23 13:37:37.556954
"""
from alembic import op
import sqlalchemy as sa
import abm.db
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql


revision = '1c9d4ca445bf'
down_revision = 'c5e1a2b3d4f6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_engagement_stage'))
        batch_op.drop_index(batch_op.f('ix_accounts_owner_score'))
        batch_op.drop_index(batch_op.f('ix_accounts_score_id'))
        batch_op.drop_index(batch_op.f('ix_accounts_stage_score'))
        batch_op.drop_index(batch_op.f('ix_accounts_tier_score'))
        batch_op.create_index('ix_accounts_owner', ['owner_id'], unique=False)
        batch_op.create_index('ix_accounts_stage', ['stage'], unique=False)
        batch_op.create_index('ix_accounts_tier', ['tier'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # room on each page for HOT updates of the scores (no index holds them any more)
        op.execute("ALTER TABLE accounts SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts RESET (fillfactor)")
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_tier')
        batch_op.drop_index('ix_accounts_stage')
        batch_op.drop_index('ix_accounts_owner')
        batch_op.create_index(batch_op.f('ix_accounts_tier_score'), ['tier', 'score'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_stage_score'), ['stage', 'score'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_score_id'), ['score', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_owner_score'), ['owner_id', 'score'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_engagement_stage'), ['engagement', 'stage'], unique=False)

