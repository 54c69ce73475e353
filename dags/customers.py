"""Airflow DAG: customers and their addresses, back office to shop (customer family as the shop's group).

Built from include/config/passerelle.yaml by passerelle.flows.customers; nothing heavy at import.
"""

from passerelle.flows.customers import customers_dag

dag = customers_dag()
