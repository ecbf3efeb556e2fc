"""account list indexes: keyset pages sorted by score or updated_at

Revision ID: c5e1a2b3d4f6
Revises: 551d4d4dd366
Create Date: 2026-11-23 13:00:00
"""
from alembic import op


revision = 'c5e1a2b3d4f6'
down_revision = '551d4d4dd366'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_score_id', ['score', 'id'], unique=False)
        batch_op.create_index('ix_accounts_updated_id', ['updated_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_updated_id')
        batch_op.drop_index('ix_accounts_score_id')
