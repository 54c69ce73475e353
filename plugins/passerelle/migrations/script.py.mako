"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Every object lives in the ``passerelle`` schema: pass ``schema="passerelle"`` to each op.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

from passerelle.migrate import forward_only, run_statements  # noqa: F401
% if imports:
${imports}
% endif

revision = "${up_revision}"
down_revision = "${down_revision}"
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


downgrade = forward_only
