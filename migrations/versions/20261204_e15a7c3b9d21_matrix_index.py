"""accounts: the owner index also holds stage, level and fit, so the matrices are counted from it

``ix_accounts_owner`` (owner_id) becomes ``ix_accounts_owner_stage_level`` (owner_id, stage,
engagement, fit_score): it serves every owner filter as before, and the stage and fit by
engagement matrices read it alone (an index-only scan of the whole workspace's 100,000
accounts, a range of it for one seller) instead of the table, twice.

Revision ID: e15a7c3b9d21
Revises: ab0a1b2c3d4e
Create Date: 2026-12-04 18:30:00
"""
from alembic import op


revision = 'e15a7c3b9d21'
down_revision = 'ab0a1b2c3d4e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_owner_stage_level', ['owner_id', 'stage', 'engagement', 'fit_score'],
                              unique=False)
        batch_op.drop_index('ix_accounts_owner')


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_owner', ['owner_id'], unique=False)
        batch_op.drop_index('ix_accounts_owner_stage_level')
