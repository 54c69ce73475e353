"""Passerelle's one Airflow plugin: the operator's desk inside Airflow's UI.

Airflow's plugin loader imports every ``.py`` file of ``plugins/`` that ``plugins/.airflowignore``
does not exclude: this file is the only one (tests/test_packaging.py checks it). It mounts the
Passerelle view (:mod:`passerelle.desk.app`, a FastAPI app) on the API server under
``/passerelle`` and adds "Passerelle" to the UI's navigation; ``GET /api/v2/plugins`` lists it
as ``passerelle``. The view is behind Airflow's own login and roles (see the app's docstring).

Importing it is cheap and opens no connection: it runs in every Airflow component.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from passerelle.desk.app import URL_PREFIX, app


class PasserellePlugin(AirflowPlugin):
    name = "passerelle"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Passerelle"}]  # noqa: RUF012 (Airflow's API)
    external_views = [  # noqa: RUF012 (Airflow's API)
        {
            "name": "Passerelle",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "passerelle",
        }
    ]
