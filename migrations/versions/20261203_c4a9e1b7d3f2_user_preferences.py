"""user preferences: a seller's default My accounts filters and digest choice

Revision ID: c4a9e1b7d3f2
Revises: b8f4d2e6a1c3
Create Date: 2026-12-03 20:45:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql


revision = 'c4a9e1b7d3f2'
down_revision = 'b8f4d2e6a1c3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preferences', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()),
                                                                            'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('preferences')
