"""The Airflow pool of the tasks that connect to the shop's server (``shop.ftp_pool``).

Airflow's scheduler never starts a task whose pool does not exist (it logs "Tasks using
non-existent pool ... will not be scheduled"; ``dag.test()`` does not check pools), so the pool
is created wherever Airflow is set up: ``make airflow`` runs this module, docker-compose.yaml's
``airflow-init`` runs ``airflow pools set shop_ftp``::

    python -m passerelle.pools              # create the pool (4 slots) if it is missing
    python -m passerelle.pools --slots 6    # create it, or set its size

The name comes from the configuration (``shop.ftp_pool``, default ``shop_ftp``); an existing
pool keeps its size unless ``--slots`` is given, so a size changed in the UI survives a restart.
"""

from __future__ import annotations

import argparse

from passerelle.config import Settings, load_settings

DEFAULT_SLOTS = 4
DESCRIPTION = "Connections to the shop's FTP/FTPS/SFTP server"


def ensure_ftp_pool(settings: Settings | None = None, *, slots: int | None = None) -> tuple[str, int]:
    """Create the pool ``shop.ftp_pool`` in Airflow's metadata database if it is missing (with
    *slots*, default :data:`DEFAULT_SLOTS`), or resize it when *slots* is given.

    :param settings: the typed settings (default :func:`passerelle.config.load_settings`).
    :returns: the pool's name and its number of slots.
    """
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    if slots is not None and slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots!r}")
    name = (settings or load_settings()).shop.ftp_pool
    with create_session() as session:
        pool = Pool.get_pool(name, session=session)
        if pool is None or slots is not None:
            pool = Pool.create_or_update_pool(
                name, slots or DEFAULT_SLOTS, DESCRIPTION, include_deferred=False, session=session
            )
        return name, pool.slots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m passerelle.pools", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--slots",
        type=int,
        help=f"pool size (default {DEFAULT_SLOTS} for a new pool; an existing pool keeps its size unless given)",
    )
    args = parser.parse_args(argv)
    name, slots = ensure_ftp_pool(slots=args.slots)
    print(f"pool {name}: {slots} slots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
