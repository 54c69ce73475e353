"""Airflow DAG: the catalog, back office to shop (families, brands, suppliers, articles, variants, photos).

Built from include/config/passerelle.yaml by passerelle.flows.catalog; nothing heavy at import.
"""

from passerelle.flows.catalog import catalog_dag

dag = catalog_dag()
