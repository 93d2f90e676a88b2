"""outbox: one row per recipient, a dead state, the one-time code kept encrypted

An email to two people in one message was blocked for both by one undeliverable address,
and retried for ever. From here every row has one recipient (its key gains `:<address>`
when an email had several); a row that can never be delivered is marked `dead_at` with
its reason instead of being retried; `code_cipher` holds a one-time code encrypted with a
key kept outside the database until the email is sent (recovery/adapters/mail.py). Unsent rows with
several recipients are split here, each keeping its body and its place in the queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_outbox = sa.table(
    'outbox',
    sa.column('id', sa.Integer()), sa.column('dedupe_key', sa.String()),
    sa.column('action_ref', sa.String()), sa.column('recipients', sa.JSON()),
    sa.column('subject', sa.String()), sa.column('text_body', sa.String()),
    sa.column('html_body', sa.String()), sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('attempts', sa.Integer()),
    sa.column('next_attempt_at', sa.DateTime(timezone=True)),
    sa.column('sent_at', sa.DateTime(timezone=True)), sa.column('last_error', sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('dedupe_key', type_=sqlmodel.sql.sqltypes.AutoString(length=500),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column(
            'code_cipher', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    bind = op.get_bind()
    shared = bind.execute(sa.select(_outbox).where(_outbox.c.sent_at.is_(None))
                          .order_by(_outbox.c.id)).mappings().all()
    for row in shared:
        if len(row['recipients']) < 2:
            continue
        bind.execute(sa.insert(_outbox), [
            {**{k: v for k, v in row.items() if k != 'id'},
             'dedupe_key': f"{row['dedupe_key']}:{address}", 'recipients': [address]}
            for address in row['recipients']])
        bind.execute(sa.delete(_outbox).where(_outbox.c.id == row['id']))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('code_cipher')
        batch_op.drop_column('dead_at')
        batch_op.alter_column('dedupe_key', type_=sqlmodel.sql.sqltypes.AutoString(length=200),
                              existing_nullable=False)
