"""account score_ref

Revision ID: b34cf7088c33
Revises: 1242b714b706
Create Date: 2026-11-23 12:22:48.740761
"""
from alembic import op
import sqlalchemy as sa
import abm.db
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql


revision = 'b34cf7088c33'
down_revision = '1242b714b706'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score_ref', sa.Double(), nullable=False, server_default=sa.text('0')))



def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('score_ref')

