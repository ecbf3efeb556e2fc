"""ICP fit: account fit columns and trained fit models

Revision ID: 3f5b8c2d9e10
Revises: a7c3e91f0b25
Create Date: 2026-12-03 20:30:00
"""
from alembic import op
import sqlalchemy as sa
import abm.db


revision = '3f5b8c2d9e10'
down_revision = 'a7c3e91f0b25'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fit_score', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('fit_rules', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('fit_model', sa.Double(), nullable=True))
    op.create_table(
        'fit_models',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('trained_at', abm.db.UTCDateTime(), nullable=False),
        sa.Column('space', abm.db.JSONType, nullable=False),
        sa.Column('names', abm.db.JSONType, nullable=False),
        sa.Column('weights', abm.db.JSONType, nullable=False),
        sa.Column('intercept', sa.Double(), nullable=False),
        sa.Column('auc', sa.Double(), nullable=True),
        sa.Column('calibration', abm.db.JSONType, nullable=False),
        sa.Column('won', sa.Integer(), nullable=False),
        sa.Column('lost', sa.Integer(), nullable=False),
        sa.Column('train_seconds', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('fit_models')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('fit_model')
        batch_op.drop_column('fit_rules')
        batch_op.drop_column('fit_score')
