"""The production topology without containers: CeleryExecutor, PostgreSQL metadata, Redis broker.

One stack per module (about 15 s to start on 2 cores): api-server, scheduler, dag-processor and a
Celery worker with 2 slots, as real processes (tests/integration/celery_stack.py). Every DAG run
is created through the REST API and must reach its end through the scheduler and the worker:
no ``dag.test()``. Two DAG bundles are loaded:

* ``probe``: a small DAG written here, proving the stack itself (mapped tasks spread over the
  worker's slots, XCom through the Execution API, a failure reported with its task log);
* ``passerelle``: the project's own dags/, run against the fixtures of tests/conftest.py (a
  seeded back office, an FTPS shop server on loopback), every flow set to a manual rhythm.
"""

from __future__ import annotations

import os
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from .celery_stack import PROJECT_DAGS, CeleryStack, RedisBroker, StackError, StackUnavailable, free_port

pytestmark = pytest.mark.timeout(600)

PROBE_DAGS = textwrap.dedent(
    '''
    """Probe DAGs for the CeleryExecutor stack test."""
    from __future__ import annotations

    import os
    import time

    from airflow.sdk import dag, task


    @dag(dag_id="celery_probe", schedule=None, catchup=False, tags=["integration"])
    def celery_probe():
        @task
        def chunks() -> list[list[int]]:
            return [[1, 2], [3, 4], [5, 6], [7]]

        @task
        def render(chunk: list[int]) -> dict:
            time.sleep(3)  # long enough for the two slots to overlap
            return {"sum": sum(chunk), "pid": os.getpid()}

        @task(pool="shop_ftp")  # as the transfers to the shop do
        def total(parts: list[dict]) -> dict:
            return {"total": sum(p["sum"] for p in parts), "pids": sorted({p["pid"] for p in parts})}

        total(render.expand(chunk=chunks()))


    @dag(dag_id="celery_probe_failing", schedule=None, catchup=False, tags=["integration"])
    def celery_probe_failing():
        @task(retries=0)
        def explode() -> None:
            raise ValueError("probe failure 4217: unknown SKU ART-999999 in orders_0001.csv line 3")

        explode()


    celery_probe()
    celery_probe_failing()
    '''
)

#: The project's flows this test runs (catalog nightly, and the hourly exchanges); each is skipped
#: while no file of dags/ defines it.
PROJECT_FLOWS = ["catalog", "prices_stock", "orders_in", "order_status"]
#: Flows that send files to the shop: a success must leave files on its server.
SENDING_FLOWS = {"catalog", "prices_stock", "order_status"}


def manual_config(path: Path) -> Path:
    """The project's passerelle.yaml with every flow on a manual rhythm and no retries.

    Unpausing a scheduled DAG would also start its latest scheduled run beside ours.
    """
    from passerelle.config import DEFAULT_PATH, FLOW_NAMES

    cfg = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")) or {}
    flows = cfg.setdefault("flows", {}) or {}
    for flow in FLOW_NAMES:
        flows[flow] = {"manual": True, "retries": 0}
    cfg["flows"] = flows
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pg_server):
    work = tmp_path_factory.mktemp("celery_stack")
    probe = work / "probe_dags"
    probe.mkdir()
    (probe / "celery_probe.py").write_text(PROBE_DAGS, encoding="utf-8")
    bundles = {"probe": probe}
    if any(PROJECT_DAGS.glob("*.py")):
        bundles["passerelle"] = PROJECT_DAGS  # the project's dags/, as mounted in docker-compose.yaml
    config = manual_config(work / "passerelle.yaml")
    celery_stack = CeleryStack(
        work, bundles=bundles, pg_server_dsn=pg_server, extra_env={"PASSERELLE_CONFIG": str(config)}
    )
    try:
        celery_stack.start()
    except StackUnavailable as exc:
        pytest.skip(f"cannot run the Celery stack here: {exc}")
    try:
        # As airflow-init does in docker-compose.yaml: transfers to the shop share this pool.
        celery_stack.set_pool("shop_ftp", 2, "Connections to the shop's FTP/FTPS/SFTP server")
        yield celery_stack
    finally:
        celery_stack.stop()


def _overlap(a: dict, b: dict) -> bool:
    start_a, end_a = datetime.fromisoformat(a["start_date"]), datetime.fromisoformat(a["end_date"])
    start_b, end_b = datetime.fromisoformat(b["start_date"]), datetime.fromisoformat(b["end_date"])
    return start_a < end_b and start_b < end_a


@pytest.mark.integration
def test_mapped_tasks_run_on_the_celery_worker(stack):
    received_before = stack.celery_tasks_received()

    result = stack.run_dag("celery_probe")

    assert result.states() == {"chunks": ["success"], "render": ["success"] * 4, "total": ["success"]}
    # Every task went through our Celery queue and ran in a worker process, not in this one.
    assert {ti["queue"] for ti in result.task_instances} == {stack.queue}
    assert all(ti["hostname"] and ti["pid"] and ti["pid"] != os.getpid() for ti in result.task_instances)
    assert stack.celery_tasks_received() - received_before == len(result.task_instances)
    assert {ti["task_id"]: ti["pool"] for ti in result.task_instances}["total"] == "shop_ftp"
    # The mapped renders spread over the worker's two slots: some ran at the same time.
    renders = [ti for ti in result.task_instances if ti["task_id"] == "render"]
    assert any(_overlap(a, b) for i, a in enumerate(renders) for b in renders[i + 1 :])
    # XCom went worker -> Execution API -> metadata DB -> next task on the worker.
    summary = stack.xcom("celery_probe", result.run_id, "total")
    assert summary["total"] == 28
    assert len(summary["pids"]) == 4 and os.getpid() not in summary["pids"]


@pytest.mark.integration
def test_a_failed_run_reports_the_task_log(stack):
    with pytest.raises(StackError) as failure:
        stack.run_dag("celery_probe_failing")

    message = str(failure.value)
    assert "ended 'failed'" in message
    assert "explode[-1] state=failed" in message
    # The task's own log, written by the worker, is in the report CI prints.
    assert "probe failure 4217: unknown SKU ART-999999 in orders_0001.csv line 3" in message


@pytest.fixture(scope="module")
def project_dags(stack):
    """Dag ids defined by the project's dags/; a file that does not import fails every flow test."""
    if "passerelle" not in stack.bundles:
        return set()
    dag_ids, errors = stack.bundle_dags("passerelle")
    if errors:
        listing = "\n\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)
        pytest.fail(f"DAG files of dags/ do not import under the Celery stack:\n{listing}")
    return dag_ids


@pytest.mark.integration
@pytest.mark.parametrize("dag_id", PROJECT_FLOWS)
def test_project_flow_runs_on_the_celery_worker(stack, project_dags, dag_id, request):
    if dag_id not in project_dags:
        pytest.skip(f"no file of dags/ defines {dag_id!r} yet")
    erp_dsn = request.getfixturevalue("erp_dsn")
    shop = request.getfixturevalue("ftps_server")
    shop.path("/inbound").mkdir(parents=True, exist_ok=True)  # the shop's drop folder: a missing one is an error
    stack.set_connection("passerelle_erp", erp_dsn.replace("postgresql://", "postgres://", 1))
    stack.set_connection("passerelle_shop", shop.uri())
    received_before = stack.celery_tasks_received()

    result = stack.run_dag(dag_id)

    ran = [ti for ti in result.task_instances if ti["state"] == "success"]
    assert ran, f"{dag_id} succeeded without running a task: {result.states()}"
    assert {ti["queue"] for ti in ran} == {stack.queue}
    assert stack.celery_tasks_received() - received_before >= len(ran)
    if dag_id in SENDING_FLOWS:
        sent = [p for p in shop.root.rglob("*") if p.is_file()]
        assert sent, f"{dag_id} succeeded but wrote nothing on the shop's server under {shop.root}"


def test_redis_server_is_started_when_none_answers(tmp_path):
    """The harness's fallback: no Redis on the preferred port, so it starts its own and stops it."""
    closed_port = free_port()
    try:
        broker = RedisBroker.ensure(tmp_path, prefer=("127.0.0.1", closed_port))
    except StackUnavailable as exc:
        pytest.skip(str(exc))
    try:
        assert broker.process is not None and broker.port != closed_port
        import redis

        client = redis.Redis(host=broker.host, port=broker.port, socket_timeout=5)
        assert client.ping() is True
        client.close()
    finally:
        broker.stop()
    assert broker.process.popen.poll() is not None
