"""touches: alerts as touches (no enrollment or playbook), not_before for retries

Revision ID: d3l1v3ry0001
Revises: c0c4f1d5e9a1
Create Date: 2026-12-03 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import abm.db


revision = 'd3l1v3ry0001'
down_revision = 'c0c4f1d5e9a1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alert_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('not_before', abm.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column('enrollment_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=True)
        batch_op.alter_column('playbook_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_unique_constraint('uq_touches_alert_id', ['alert_id'])
        batch_op.create_foreign_key('fk_touches_alert_id_alerts', 'alerts', ['alert_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index('ix_touches_not_before', ['not_before'], unique=False,
                              postgresql_where=sa.text('not_before IS NOT NULL'),
                              sqlite_where=sa.text('not_before IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.drop_index('ix_touches_not_before')
        batch_op.drop_constraint('fk_touches_alert_id_alerts', type_='foreignkey')
        batch_op.drop_constraint('uq_touches_alert_id', type_='unique')
        batch_op.alter_column('playbook_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('enrollment_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=False)
        batch_op.drop_column('not_before')
        batch_op.drop_column('alert_id')
