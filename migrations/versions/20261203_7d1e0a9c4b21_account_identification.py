"""account identification: networks, ip2asn, look-ups, visitors, event visitor ids

Revision ID: 7d1e0a9c4b21
Revises: a79fdba7e457
Create Date: 2026-12-03 20:10:00
"""
from alembic import op
import sqlalchemy as sa
import abm.db


revision = '7d1e0a9c4b21'
down_revision = 'a79fdba7e457'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'account_networks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('network', sa.String(length=100), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('range_start', sa.String(length=32), nullable=False),
        sa.Column('range_end', sa.String(length=32), nullable=False),
        sa.Column('source', sa.String(length=100), nullable=False),
        sa.Column('created_at', abm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_account_networks_account', 'account_networks', ['account_id'])
    op.create_table(
        'asn_ranges',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('range_start', sa.String(length=32), nullable=False),
        sa.Column('range_end', sa.String(length=32), nullable=False),
        sa.Column('asn', sa.BigInteger(), nullable=False),
        sa.Column('country', sa.String(length=10), nullable=False),
        sa.Column('description', sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_asn_ranges_asn', 'asn_ranges', ['asn'])
    op.create_table(
        'asn_accounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('asn', sa.BigInteger(), nullable=True),
        sa.Column('org_name', sa.String(length=300), nullable=True),
        sa.Column('created_at', abm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_asn_accounts_asn', 'asn_accounts', ['asn'])
    op.create_table(
        'ip_lookups',
        sa.Column('ip', sa.String(length=45), nullable=False),
        sa.Column('company_name', sa.String(length=300), nullable=True),
        sa.Column('company_domain', sa.String(length=253), nullable=True),
        sa.Column('company_type', sa.String(length=50), nullable=True),
        sa.Column('fetched_at', abm.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('ip'),
    )
    op.create_table(
        'visitors',
        sa.Column('visitor_id', sa.String(length=100), nullable=False),
        sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('identified_at', abm.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('visitor_id'),
    )
    op.create_table(
        'data_versions',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('changed_at', abm.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visitor_id', sa.String(length=100), nullable=True))
    op.create_index('ix_events_anonymous_visitor', 'events', ['visitor_id', 'occurred_at'],
                    postgresql_where=sa.text('contact_id IS NULL AND visitor_id IS NOT NULL'),
                    sqlite_where=sa.text('contact_id IS NULL AND visitor_id IS NOT NULL'))
    # Visits stored before this revision kept their visitor id in properties.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE events SET visitor_id = properties->>'visitor_id' "
                   "WHERE type IN ('web_visit', 'form_fill') AND properties ? 'visitor_id'")
    else:
        op.execute("UPDATE events SET visitor_id = json_extract(properties, '$.visitor_id') "
                   "WHERE type IN ('web_visit', 'form_fill') AND json_extract(properties, '$.visitor_id') IS NOT NULL")


def downgrade() -> None:
    op.drop_index('ix_events_anonymous_visitor', table_name='events')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('visitor_id')
    op.drop_table('data_versions')
    op.drop_table('visitors')
    op.drop_table('ip_lookups')
    op.drop_index('ix_asn_accounts_asn', table_name='asn_accounts')
    op.drop_table('asn_accounts')
    op.drop_index('ix_asn_ranges_asn', table_name='asn_ranges')
    op.drop_table('asn_ranges')
    op.drop_index('ix_account_networks_account', table_name='account_networks')
    op.drop_table('account_networks')
