"""kpi_day_parts: the attribution of each day's conversions, kept incrementally; touches by updated_at

Revision ID: k17d4y5p4rt5
Revises: e15a7c3b9d21
Create Date: 2026-12-04 18:20:00
"""
from alembic import op
import sqlalchemy as sa
import abm.db
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql


revision = 'k17d4y5p4rt5'
down_revision = 'e15a7c3b9d21'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kpi_day_parts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_by', sa.String(length=20), nullable=False),
    sa.Column('model', sa.String(length=20), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('computed_at', abm.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('group_by', 'model', 'day', name='uq_kpi_day_parts')
    )
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.create_index('ix_touches_updated', ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.drop_index('ix_touches_updated')
    op.drop_table('kpi_day_parts')
