"""Seed the demo back office once, with the project's own `python -m passerelle_demo seed`.

Run by the ``erp-seed`` service of docker-compose.yaml (profile "demo"):

    PASSERELLE_DEMO_ERP_DSN=postgresql://passerelle:...@erp-db:5432/erp python docker/erp_seed.py

It seeds only when ``erp.article`` does not exist or is empty, so a restart never replaces the
data a user has been editing. ``PASSERELLE_DEMO_ARTICLES`` sets the catalog size (default 1000).
The DSN is its own variable, never the ERP connection: pointing AIRFLOW_CONN_PASSERELLE_ERP at a
real back office can never get it overwritten by demo data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg

WAIT_SECONDS = 60


def article_count(dsn: str) -> int | None:
    """Articles in the back office, or None when the ERP schema is not there yet."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        if conn.execute("SELECT to_regclass('erp.article') IS NULL").fetchone()[0]:
            return None
        return int(conn.execute("SELECT count(*) FROM erp.article").fetchone()[0])


def wait_for(dsn: str, seconds: float = WAIT_SECONDS) -> int | None:
    """``article_count`` once the database answers; raise after ``seconds`` of refusals."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return article_count(dsn)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main() -> int:
    dsn = os.environ.get("PASSERELLE_DEMO_ERP_DSN")
    if not dsn:
        print("erp_seed: set PASSERELLE_DEMO_ERP_DSN to the demo back office's DSN", file=sys.stderr)
        return 2
    articles = os.environ.get("PASSERELLE_DEMO_ARTICLES", "1000")
    if not articles.isdigit() or int(articles) < 1:
        print(f"erp_seed: PASSERELLE_DEMO_ARTICLES must be a positive integer, got {articles!r}", file=sys.stderr)
        return 2
    count = wait_for(dsn)
    if count:
        print(f"erp_seed: the back office already has {count} articles; left as it is")
        return 0
    command = [sys.executable, "-m", "passerelle_demo", "seed", "--dsn", dsn, "--articles", articles]
    print(f"erp_seed: seeding {articles} demo articles")
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
