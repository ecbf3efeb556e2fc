"""alert inbox: reasons, what was behind an alert, and the seller's acknowledge, snooze
and not-relevant

Revision ID: a7e3c9d1f2b4
Revises: 7d1e0a9c4b21
Create Date: 2026-12-03 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import abm.db
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql


revision = 'a7e3c9d1f2b4'
down_revision = '7d1e0a9c4b21'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=150), nullable=True))
        batch_op.add_column(sa.Column('score_before', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('score_after', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('playbook_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('step_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('suggestion', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', abm.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('snoozed_until', abm.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dismissed_at', abm.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('feedback', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('handled_by', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_alerts_playbook_id_playbooks', 'playbooks', ['playbook_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_foreign_key('fk_alerts_handled_by_users', 'users', ['handled_by'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_index('ix_alerts_user_created', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_user_created')
        batch_op.drop_constraint('fk_alerts_handled_by_users', type_='foreignkey')
        batch_op.drop_constraint('fk_alerts_playbook_id_playbooks', type_='foreignkey')
        for column in ('handled_by', 'feedback', 'dismissed_at', 'snoozed_until', 'acknowledged_at', 'suggestion',
                       'step_id', 'playbook_id', 'details', 'score_after', 'score_before', 'reason'):
            batch_op.drop_column(column)
