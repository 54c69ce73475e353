"""`make demo`: one full sync cycle against embedded defaults, through the real DAGs.

With no connection configured it uses a local PostgreSQL (127.0.0.1:5432 when it answers,
else a throwaway cluster) and starts an FTP server on loopback; it seeds a demo back office,
runs the catalog in full, changes a few articles and runs the delta, changes them again and runs
a new-only catalog (only the new article travels), ships two web orders in parcels, then runs the
hourly exchanges, and prints a summary and where the shop's files are.

Set AIRFLOW_CONN_PASSERELLE_ERP / AIRFLOW_CONN_PASSERELLE_SHOP to run against real ones
(the demo then neither seeds nor changes anything: it only runs the flows).

``--shop <dialect>`` (``make demo SHOP=shopify``): the same cycle with that shop's formats
(``shop.dialect``), so a retailer sees their own shop's files in ``var/shop/``. The demo's
configuration is the project's with that dialect and the shop's section
(:data:`SHOP_SECTIONS`), and pending orders integrated awaiting their payment
(:data:`DEMO_AWAITING`: the samples' late payment shows), written to ``var/demo/passerelle.yaml``.

It prints one line per run (state, duration, the run's note) and a short table; Airflow's task
logs and the FTP server's log go to ``var/demo.log``, or to the terminal with ``VERBOSE=1``
(``make demo VERBOSE=1``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from passerelle import PROJECT_ROOT

VAR = PROJECT_ROOT / "var"
#: Where the task logs and the FTP server's log go unless VERBOSE=1.
LOG = VAR / "demo.log"


def verbose() -> bool:
    return os.environ.get("VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def quiet() -> Iterator[None]:
    """Send everything written to stdout and stderr (Airflow's task logs, the FTP server's log, from
    any thread) to :data:`LOG` meanwhile; nothing changes with VERBOSE=1."""
    if verbose():
        yield
        return
    LOG.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(LOG, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _airflow_env() -> None:
    # Airflow's reading of plugins/.airflowignore uses a pathspec class pathspec deprecates: noise here.
    warnings.filterwarnings("ignore", message=r"GitWildMatchPattern", category=DeprecationWarning)
    # Its own Airflow home: the demo's runs must not land in `make airflow`'s (var/airflow).
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(VAR / "demo-airflow")))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT / "plugins"), os.environ.get("PYTHONPATH")])
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


#: A flow's DAG id before DAG ids became the flows' names (issue #10): the demo runs either.
OLD_DAG_IDS = {
    "catalog": "catalog_nightly",
    "prices_stock": "prices_stock_export",
    "orders_in": "orders_import",
    "order_status": "order_status_export",
    "report": "daily_report",
}


def _find_dag(bag, flow: str):
    """(dag_id, dag) of a flow, by its name or its former DAG id; (flow, None) when neither is there."""
    for dag_id in (flow, OLD_DAG_IDS[flow]):
        if dag_id in bag.dags:
            return dag_id, bag.dags[dag_id]
    if flow == "catalog":
        raise SystemExit(f"no catalog DAG in {sorted(bag.dags)}")
    return flow, None


#: What each shop's section says in the demo (the settings its dialect cannot do without).
SHOP_SECTIONS: dict[str, dict] = {"shopify": {"location": "Entrepôt Lyon"}}
#: What the demo adds to the ``inbound`` section: pending orders (bank transfer, cheque) come in
#: awaiting their payment, so the sample paid the next day shows a payment seen later.
DEMO_AWAITING: dict[str, list[str]] = {"awaiting_payment": ["pending"]}


def demo_config(shop: str | None, folder: Path = VAR / "demo", *, inbound: dict | None = None) -> Path:
    """The project's configuration with ``shop.dialect: <shop>`` (and that shop's section; None: the
    project's dialect), pending orders awaiting their payment (:data:`DEMO_AWAITING`) and the demo
    back office's ``inbound`` set-up (*inbound*: the gift-card article and walk-in customer of
    :func:`passerelle_demo.seed.seed_inbound_setup`), written to *folder*; the path, for
    ``PASSERELLE_CONFIG``. Checked as the DAGs will read it."""
    import yaml

    from passerelle.config import DEFAULT_PATH, load_settings

    cfg = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")) or {}
    if shop:
        cfg.setdefault("shop", {})["dialect"] = shop
        if shop in SHOP_SECTIONS:
            cfg[shop] = {**SHOP_SECTIONS[shop], **(cfg.get(shop) or {})}
    cfg["inbound"] = {**DEMO_AWAITING, **(cfg.get("inbound") or {}), **(inbound or {})}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "passerelle.yaml"
    path.write_text(
        f"# make demo{f' SHOP={shop}' if shop else ''}: {DEFAULT_PATH.name} with this shop's formats and the demo "
        "back office's gift-card article and walk-in customer (written by the demo)\n"
        + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    load_settings(path)  # a mistake shows here, naming the file, rather than as a DAG import error
    return path


SAMPLES = PROJECT_ROOT / "include" / "sample" / "inbound"


def demo_samples(dialect: str) -> list[Path]:
    """The files the demo's shop drops: every file of include/sample/inbound/ (generic orders and
    customers, Shopify's exports), then those of the shop's own folder (its orders export as its
    software writes it: include/sample/inbound/woocommerce/, prestashop/)."""
    return sorted(SAMPLES.glob("*.csv")) + sorted((SAMPLES / dialect).glob("*.csv"))


def _dialect() -> str:
    """The shop dialect the DAGs read (the demo's configuration, or the project's)."""
    from passerelle.config import load_settings

    return load_settings().shop.dialect


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    from passerelle.core.dialects import names

    p = argparse.ArgumentParser(prog="python -m passerelle_demo.run", description=__doc__.split("\n")[0])
    p.add_argument(
        "--shop",
        choices=names(),
        default=None,
        help="the shop whose formats the demo writes (shop.dialect); default: the project configuration's",
    )
    return p.parse_args(argv)


def _run(name: str, dag, when, conf=None) -> str:
    """Run *dag* once; print one line: what ran, its state, how long, and the run's note."""
    started = time.monotonic()
    with quiet():
        dr = dag.test(logical_date=when, run_conf=conf or {})
    note = _run_note(dr) or ""
    print(f"  {name:<22} {dr.state!s:<8} {time.monotonic() - started:5.0f} s  {note}", flush=True)
    return str(dr.state)


def _run_note(dr) -> str | None:
    """The note the run's last task kept (XCom ``run_note``), if any."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from passerelle.operators.outcome import NOTE_KEY

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(run_id=dr.run_id, key=NOTE_KEY, dag_ids=dr.dag_id).with_only_columns(XComModel.value)
        ).first()
    return XComModel.deserialize_value(row) if row else None


def main(argv: list[str] | None = None) -> int:
    import pendulum
    import psycopg

    from passerelle_demo.localenv import create_database, local_postgres, start_ftp
    from passerelle_demo.seed import DEMO_INBOUND

    args = _arguments(argv)
    stops = []
    embedded = "AIRFLOW_CONN_PASSERELLE_ERP" not in os.environ
    if args.shop or embedded:
        # The seeded back office has the gift-card article and walk-in customer the settings name.
        os.environ["PASSERELLE_CONFIG"] = str(demo_config(args.shop, inbound=DEMO_INBOUND if embedded else None))
    if args.shop:
        print(f"shop formats: {args.shop} (configuration {os.environ['PASSERELLE_CONFIG']})")
    if not verbose():
        LOG.parent.mkdir(parents=True, exist_ok=True)
        LOG.write_text("", encoding="utf-8")
        print(f"task and FTP server logs: {LOG} (VERBOSE=1 to see them here)")
    try:
        if embedded:
            server, stop_pg = local_postgres()
            stops.append(stop_pg)
            # PASSERELLE_DEMO_DB: another database name, so that two demos on one server do not collide.
            erp_dsn = create_database(server, os.environ.get("PASSERELLE_DEMO_DB", "passerelle_demo"), replace=True)
            from passerelle_demo.seed import seed_database, seed_inbound_setup

            with quiet(), psycopg.connect(erp_dsn) as conn:
                counts = seed_database(conn, articles=1000, seed=42)
                seed_inbound_setup(conn)
            print(
                f"demo back office: {erp_dsn} ({counts.get('article', '?')} articles)"
                if isinstance(counts, dict)
                else f"demo back office: {erp_dsn}"
            )
            os.environ["AIRFLOW_CONN_PASSERELLE_ERP"] = erp_dsn.replace("postgresql://", "postgres://", 1)
        if "AIRFLOW_CONN_PASSERELLE_SHOP" not in os.environ:
            shop_root = VAR / "shop"
            if shop_root.exists():
                import shutil

                shutil.rmtree(shop_root)
            if not verbose():
                # The FTP server logs every command, from its own thread: to the log file, not here.
                import logging

                ftp_log = logging.getLogger("pyftpdlib")
                ftp_log.addHandler(logging.FileHandler(LOG, encoding="utf-8"))
                ftp_log.propagate = False
            with quiet():
                ftp, stop_ftp = start_ftp(shop_root)
            stops.append(stop_ftp)
            os.environ["AIRFLOW_CONN_PASSERELLE_SHOP"] = ftp.uri()
            print(f"shop FTP server: ftp://{ftp.host}:{ftp.port} (user {ftp.user}), files in {shop_root}")
        with quiet():
            _airflow_env()

            from airflow.dag_processing.dagbag import DagBag

            bag = DagBag(str(PROJECT_ROOT / "dags"))
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        day = pendulum.now("Europe/Paris").start_of("day").subtract(days=1).add(hours=2)
        results = []
        catalog_id, catalog = _find_dag(bag, "catalog")
        print("runs:")
        results.append((f"{catalog_id} (full)", _run(f"{catalog_id} (full)", catalog, day, {"mode": "full"})))
        if embedded:
            from passerelle_demo.seed import apply_demo_changes

            dsn = os.environ["AIRFLOW_CONN_PASSERELLE_ERP"].replace("postgres://", "postgresql://")
            with psycopg.connect(dsn) as c:
                changes = apply_demo_changes(c)
            print(f"  changed in the back office: {_short(changes)}")
        # Explicit: dag.test() keeps the previous run's conf in the DAG's params.
        results.append(
            (f"{catalog_id} (delta)", _run(f"{catalog_id} (delta)", catalog, day.add(hours=1), {"mode": "delta"}))
        )
        if embedded:
            # More edits, then a new-only run: only the new article travels, the changes wait.
            with psycopg.connect(dsn) as c:
                more = apply_demo_changes(c)
            print(f"  changed again: {_short(more)}")
            results.append(
                (
                    f"{catalog_id} (new only)",
                    _run(f"{catalog_id} (new only)", catalog, day.add(hours=1, minutes=30), {"mode": "new"}),
                )
            )
            from passerelle_demo.seed import seed_parcels

            with psycopg.connect(dsn) as c:
                parcels = seed_parcels(c)
            print(f"  shipped in parcels: {', '.join(parcels)} (two parcels; one parcel and the rest cancelled)")
        if embedded and "AIRFLOW_CONN_PASSERELLE_SHOP" in os.environ and (VAR / "shop").exists():
            # The shop drops its orders and customers (the samples of docs/formats/inbound.md), and
            # its own orders export (include/sample/inbound/<dialect>/).
            import shutil

            drop = VAR / "shop" / "inbound"
            drop.mkdir(parents=True, exist_ok=True)
            for sample in demo_samples(_dialect()):
                shutil.copy(sample, drop / sample.name)
            print(f"  the shop dropped {len(list(drop.glob('*.csv')))} files in {drop}")
        for flow in ("orders_in", "prices_stock", "order_status", "report"):
            dag_id, dag = _find_dag(bag, flow)
            if dag is not None:
                conf = {"mode": "delta"} if "mode" in dag.params else {}
                # The report as if made now: its window ends at its logical moment and must see the runs above.
                when = pendulum.now("Europe/Paris") if flow == "report" else day.add(hours=2)
                results.append((dag_id, _run(dag_id, dag, when, conf)))
            if flow == "orders_in" and embedded:
                _invoice(day)
        _summary(results)
        return 0 if all(state == "success" for _, state in results) else 1
    finally:
        with quiet():
            for stop in reversed(stops):
                stop()


def _invoice(day) -> None:
    """The demo back office invoices the web orders just integrated, on the day before today (the
    day the report flow's ``export_journal`` writes the journal of), credits one and refunds it."""
    import psycopg

    from passerelle_demo.accounting import invoice_web_orders

    dsn = os.environ["AIRFLOW_CONN_PASSERELLE_ERP"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        made = invoice_web_orders(conn, day.date())
    print(
        f"  invoiced in the back office on {day.date()}: {len(made['invoices'])} invoices, "
        f"{len(made['credit_notes'])} credit note (for the sales journal)"
    )


def _short(changes) -> str:
    """The demo's changes in a few words (counts, not the references)."""
    if not isinstance(changes, dict):
        return str(changes)
    return ", ".join(f"{k} {len(v) if isinstance(v, (list, tuple, set)) else v}" for k, v in changes.items())


def _summary(results) -> None:
    """A short table: one line per recorded run (rows moved, rejects, bytes), then where the files are."""
    import psycopg

    from passerelle.core.report import rows_moved

    dsn = os.environ["AIRFLOW_CONN_PASSERELLE_ERP"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT flow, mode, dry_run, counts, rejects, bytes_sent, bytes_received "
            "FROM passerelle.run_summary ORDER BY id"
        ).fetchall()
        web = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'awaiting_payment'), "
            "(SELECT count(*) FROM erp.credit_note_request), "
            "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM erp.order_status_history h WHERE h.order_id = o.id "
            "AND h.status = 'awaiting_payment') AND status <> 'awaiting_payment') "
            "FROM erp.sales_order o WHERE origin = 'web'"
        ).fetchone()
    failed = [name for name, state in results if state != "success"]
    print(
        f"\n== Passerelle demo: {len(results) - len(failed)} of {len(results)} runs succeeded"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + " =="
    )
    print(f"  {'flow':<14} {'mode':<6} {'rows':>7} {'rejects':>8} {'sent':>10} {'received':>10}")
    for flow, mode, dry, counts, rejects, sent, received in rows:
        print(
            f"  {flow:<14} {(mode or '-') + (' dry' if dry else ''):<6} {rows_moved(counts):>7} {rejects or 0:>8} "
            f"{sent or 0:>9}B {received or 0:>9}B"
        )
    accounting = VAR / "accounting"
    if accounting.exists():
        files = sorted(p.name for p in accounting.iterdir() if p.is_file() and not p.name.startswith("."))
        print(f"\nThe accountant's files: {', '.join(files) or 'none'} in {accounting}")
    from passerelle.config import load_settings
    from passerelle.dag_settings import report_settings

    daily = sorted(report_settings(load_settings())["local_dir"].glob("orders-*.csv"))
    print(
        f"\nWeb orders: {web[0]} ({web[1]} awaiting their payment, {web[3]} paid later and confirmed), "
        f"{web[2]} credit note requests from refunds; the staff's list: "
        + (f"{daily[-1]}" if daily else "no daily file")
        + " and the Passerelle view's Web orders (make airflow)"
    )
    shop = VAR / "shop"
    if shop.exists():
        files = [p for p in shop.rglob("*") if p.is_file()]
        folders: dict[str, int] = {}
        for p in files:
            top = p.relative_to(shop).parts[0] if len(p.relative_to(shop).parts) > 1 else "."
            folders[top] = folders.get(top, 0) + 1
        print(
            f"\nThe shop's files: {len(files)} in {shop} ("
            + ", ".join(f"{k}/ {v}" for k, v in sorted(folders.items()))
            + ")"
        )


if __name__ == "__main__":
    sys.exit(main())
