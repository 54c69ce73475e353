# Passerelle's Airflow image: the official Airflow image plus the project's own libraries, at
# the versions requirements.txt pins (the one list of versions, tested in CI).
#
#   docker compose build            # or: docker build -t passerelle-airflow:3.3.2 .
#
# Airflow, its providers and Celery stay as the official image ships them for this Airflow
# version (its constraints were tested together); only the libraries below are added. The
# project's code is copied in, so the image also runs without the bind mounts of
# docker-compose.yaml (e.g. on Kubernetes); the compose file mounts the working tree over it.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

COPY requirements.txt /tmp/passerelle-requirements.txt
RUN grep -iE '^(numpy|pandas|pillow|pyvips|pyvips-binary|nh3|reportlab|psycopg|psycopg-binary|pyyaml|apache-airflow-providers-(ftp|sftp|ssh|postgres|common-sql))==' \
        /tmp/passerelle-requirements.txt > /tmp/passerelle-runtime.txt \
    && cat /tmp/passerelle-runtime.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/passerelle-runtime.txt

COPY --chown=airflow:root dags/ /opt/airflow/dags/
# plugins/ holds the package passerelle (with its migrations: the init runs python -m
# passerelle.migrate), the demo package passerelle_demo (the erp-seed service) and the
# .airflowignore that keeps Airflow's plugin loader out of both.
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root include/config/ /opt/airflow/config/

ENV PYTHONPATH=/opt/airflow/plugins \
    PASSERELLE_CONFIG=/opt/airflow/config/passerelle.yaml
