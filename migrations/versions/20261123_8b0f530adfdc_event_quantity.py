"""event quantity

Revision ID: 8b0f530adfdc
Revises: b34cf7088c33
Create Date: 2026-11-23 12:29:27.325124
"""
from alembic import op
import sqlalchemy as sa
import abm.db
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql


revision = '8b0f530adfdc'
down_revision = 'b34cf7088c33'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quantity', sa.Integer(), server_default=sa.text('1'), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('quantity')

