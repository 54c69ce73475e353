"""Airflow DAG: orders and customers from the shop's inbound files, into the back office.

Built from include/config/passerelle.yaml by passerelle.flows.orders; nothing heavy at import.
"""

from passerelle.flows.orders import orders_in_dag

dag = orders_in_dag()
