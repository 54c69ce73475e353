"""`make airflow` (passerelle_demo.standalone): the admin's password kept where Airflow keeps it,
and the connection airflow_api through which runs write their notes, reaching that API server as
that user."""

from __future__ import annotations

import json

from passerelle_demo.standalone import PASSWORDS, admin_password, api_connection, environment


def test_the_admin_password_is_made_once_and_kept_in_airflows_own_file(tmp_path):
    home = tmp_path / "airflow"
    first = admin_password(home)
    kept = json.loads((home / PASSWORDS).read_text())
    assert kept == {"admin": first} and len(first) >= 12
    assert (home / PASSWORDS).stat().st_mode & 0o077 == 0  # readable by its owner only
    assert admin_password(home) == first  # a second start keeps it

    (home / PASSWORDS).write_text(json.dumps({"viewer": "v-pw"}))  # a file without admin: admin added
    added = admin_password(home)
    assert json.loads((home / PASSWORDS).read_text()) == {"viewer": "v-pw", "admin": added}


def test_the_api_connection_reaches_this_api_server_as_admin(tmp_path):
    from airflow.models.connection import Connection

    home = tmp_path / "airflow"
    (home).mkdir()
    (home / PASSWORDS).write_text(json.dumps({"admin": "p@ss/w:rd?"}))
    env = environment({"AIRFLOW_HOME": str(home), "PATH": "/usr/bin", "AIRFLOW__API__PORT": "8099"})
    conn = Connection(conn_id="airflow_api", uri=env["AIRFLOW_CONN_AIRFLOW_API"])
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password) == (
        "http",
        "127.0.0.1",
        8099,
        "admin",
        "p@ss/w:rd?",
    )
    assert env["PATH"].split(":")[0].endswith("/bin") and env["PATH"].endswith(":/usr/bin")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    # A connection given by the user is kept.
    mine = environment({"AIRFLOW_HOME": str(home), "AIRFLOW_CONN_AIRFLOW_API": "http://ops:x@api:8080"})
    assert mine["AIRFLOW_CONN_AIRFLOW_API"] == "http://ops:x@api:8080"
    assert api_connection("a b", 8080) == "http://admin:a%20b@127.0.0.1:8080"
