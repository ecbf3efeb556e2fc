"""kpi rollups

Revision ID: 551d4d4dd366
Revises: 8b0f530adfdc
Create Date: 2026-11-23 12:46:49.157147
"""
from alembic import op
import sqlalchemy as sa
import abm.db
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import postgresql

revision = '551d4d4dd366'
down_revision = '8b0f530adfdc'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kpi_rollups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('computed_at', abm.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('kpi_rollups')
