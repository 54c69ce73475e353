"""Airflow DAG: prices (base, promotions, customer-group prices) and stock, back office to shop.

Built from include/config/passerelle.yaml by passerelle.flows.exchange; nothing heavy at import.
"""

from passerelle.flows.exchange import prices_stock_dag

dag = prices_stock_dag()
