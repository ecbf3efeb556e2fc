"""segments: saved, named account audiences

Revision ID: c0c4f1d5e9a1
Revises: c4a9e1b7d3f2
Create Date: 2026-12-03 20:40:00
"""
from alembic import op
import sqlalchemy as sa

import abm.db

revision = 'c0c4f1d5e9a1'
down_revision = 'c4a9e1b7d3f2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'segments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('condition', abm.db.JSONType, nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', abm.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', abm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('segments')
