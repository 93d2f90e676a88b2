"""the refusal codes of a processed human input

`lifecycle_wait` gains `codes`: the `models.refusal.RefusalCode` of each refusal beside the
words in `detail`, so code that decides what follows a refusal (a sign-off code expired or
withdrawn is replaced) reads the code, never the words. Rows written before this get their
codes from their words once, here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 08:00:00
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: The words the product wrote for the two codes that decide a reissue, as of 0004.
_WORDS = (("the sign-off code expired at", "code_expired"),
          ("the sign-off code was withdrawn", "code_withdrawn"))


def upgrade() -> None:
    with op.batch_alter_table('lifecycle_wait', schema=None) as batch_op:
        batch_op.add_column(sa.Column('codes', sa.JSON(), nullable=False,
                                      server_default='[]'))
    bind = op.get_bind()
    wait = sa.table('lifecycle_wait', sa.column('id', sa.Integer()),
                    sa.column('outcome', sa.String()), sa.column('detail', sa.JSON()),
                    sa.column('codes', sa.JSON()))
    for row_id, detail in bind.execute(
            sa.select(wait.c.id, wait.c.detail).where(wait.c.outcome == 'refused')).all():
        reasons = json.loads(detail) if isinstance(detail, str) else (detail or [])
        found = [code for reason in reasons for words, code in _WORDS
                 if str(reason).startswith(words)]
        if found:
            bind.execute(wait.update().where(wait.c.id == row_id).values(codes=found))


def downgrade() -> None:
    with op.batch_alter_table('lifecycle_wait', schema=None) as batch_op:
        batch_op.drop_column('codes')
