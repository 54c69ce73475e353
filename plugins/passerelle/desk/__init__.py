"""The operator's desk: the Passerelle view inside Airflow's UI (a FastAPI app, :mod:`.app`) and
what it reads (:mod:`.queries`). Its actions are core functions (:mod:`passerelle.core.quarantine`)."""
