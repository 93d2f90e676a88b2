"""absences of reviewers, and the gate snapshot a closure decision was made on

`absence` records who is away and when (a sign-off waiting on someone away may be handed
to a stand-in, and nobody away is chosen by any automatic path). `closure_request` and
`decision` gain `snapshot_ref`: a reference to exactly what the triangulation gate counted
(`models/gate.py:gate_snapshot`), so a closure decision names the facts it was made on.
Rows written before this carry none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'absence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('absence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_absence_person_id'), ['person_id'], unique=False)
    for table in ('closure_request', 'decision'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(
                'snapshot_ref', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))


def downgrade() -> None:
    for table in ('decision', 'closure_request'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('snapshot_ref')
    with op.batch_alter_table('absence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_absence_person_id'))
    op.drop_table('absence')
