"""The demo and the local environment, kept out of the production package ``passerelle``.

``seed`` makes a deterministic demo back office, ``localenv`` starts a PostgreSQL and an FTP
server on loopback, ``run`` is `make demo`. The tests, the benchmarks and the compose stack's
demo services use them; ``passerelle`` never imports this package (tests/test_packaging.py), and
Airflow's plugin loader skips it (plugins/.airflowignore).
"""
