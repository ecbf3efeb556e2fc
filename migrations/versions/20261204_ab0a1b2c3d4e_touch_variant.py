"""touches: the A/B variant of an email step a touch sent (its name; empty without variants)

Revision ID: ab0a1b2c3d4e
Revises: d3l1v3ry0001
Create Date: 2026-12-04 04:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'ab0a1b2c3d4e'
down_revision = 'd3l1v3ry0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.drop_column('variant')
