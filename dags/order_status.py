"""Airflow DAG: order statuses (with carrier and tracking number) and invoice PDFs, back office to shop.

Built from include/config/passerelle.yaml by passerelle.flows.exchange; nothing heavy at import.
"""

from passerelle.flows.exchange import order_status_dag

dag = order_status_dag()
