"""evidence index by action, pillar and day

The daily review, the gate and the packs pick, per action and triangulation pillar, the
latest item and the latest two measured items up to a date. With (action_id, observed_on)
alone each pick walks every pillar's items back from the date and reads each table row to
check its pillar; (action_id, pillar, observed_on) goes straight to the pillar's newest
entry, in (observed_on, id) order (the rowid ends every SQLite index entry).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:20:00
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index('ix_evidence_action_pillar_observed',
                              ['action_id', 'pillar', 'observed_on'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_evidence_action_pillar_observed')
