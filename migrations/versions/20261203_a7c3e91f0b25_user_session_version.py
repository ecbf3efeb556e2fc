"""user session version: logout and a password change end every session

Revision ID: a7c3e91f0b25
Revises: a7e3c9d1f2b4
Create Date: 2026-12-03 19:55:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'a7c3e91f0b25'
down_revision = 'a7e3c9d1f2b4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default=sa.text('1'),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
