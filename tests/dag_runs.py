"""Reading what a DAG run left behind, for the tests that run DAGs with ``dag.test()``."""

from __future__ import annotations


def xcom(dr, task_id: str, key: str = "return_value"):
    """The XCom *key* a task of the run *dr* pushed, deserialised; None if it pushed none."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(run_id=dr.run_id, key=key, task_ids=task_id, dag_ids=dr.dag_id).with_only_columns(
                XComModel.value
            )
        ).first()
    return XComModel.deserialize_value(row) if row else None
