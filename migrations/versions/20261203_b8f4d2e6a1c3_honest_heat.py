"""honest heat: the counted share of each event, the passive part of each account's
score, repeated opens looked up by touch

Revision ID: b8f4d2e6a1c3
Revises: 3f5b8c2d9e10
Create Date: 2026-12-03 20:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'b8f4d2e6a1c3'
down_revision = '3f5b8c2d9e10'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('factor', sa.Double(), server_default=sa.text('1'), nullable=False))
        batch_op.create_index('ix_events_open_touch', ['touch_id', 'occurred_at'], unique=False,
                              postgresql_where=sa.text("type = 'email_open'"),
                              sqlite_where=sa.text("type = 'email_open'"))
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('passive_ref', sa.Double(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('passive_ref')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_open_touch', postgresql_where=sa.text("type = 'email_open'"),
                            sqlite_where=sa.text("type = 'email_open'"))
        batch_op.drop_column('factor')
