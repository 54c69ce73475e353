"""Airflow DAG: the daily report (runs, volumes, web vs store sales, stock alerts) as HTML.

Built from include/config/passerelle.yaml (flows.report) by passerelle.flows.report; nothing
heavy at import. The page goes to the shop's server and to a local folder.
"""

from passerelle.flows.report import report_dag

dag = report_dag()
