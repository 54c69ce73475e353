"""A process that imports Airflow and the operators once, then forks one child per job.

Importing Airflow takes seconds; a kill round wants a fresh process each time. The zygote reads
jobs as JSON lines on stdin (``{"job": "module:function", "kwargs": {...}, "env": {...}, "log":
path}``), forks, and answers ``{"pid": ...}`` at once, then ``{"pid": ..., "exit": code}`` or
``{"pid": ..., "signal": number}`` when the child ends. The child sets the job's environment
(the Airflow connections of the test's back office and shop), writes its output and any
traceback to ``log`` and runs the function: the real operators' code, in a real process that the
test kills with ``os.kill(pid, SIGKILL)``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def serve() -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    import psycopg  # noqa: F401
    import tests.trials.jobs  # noqa: F401  (and through it the operators, Airflow's SDK, the hooks)

    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(job)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(json.dumps({"pid": pid, "signal": os.WTERMSIG(status)}), flush=True)
        else:
            print(json.dumps({"pid": pid, "exit": os.WEXITSTATUS(status)}), flush=True)


def _child(job: dict) -> None:
    code = 1
    try:
        os.environ.update(job.get("env", {}))
        fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdin.close()
        module, name = job["job"].split(":")
        result = getattr(importlib.import_module(module), name)(**job.get("kwargs", {}))
        print("RESULT " + json.dumps(result, default=str), flush=True)
        code = 0
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


class Zygote:
    """The test's side: :meth:`start` a job (its pid at once), :meth:`wait` for its end."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-u", __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        ready = self._read()
        assert "ready" in ready, ready

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote ended (exit {self.proc.poll()})")
        return json.loads(line)

    def start(self, job: str, *, log: Path, env: dict[str, str] | None = None, **kwargs) -> int:
        self.proc.stdin.write(json.dumps({"job": job, "kwargs": kwargs, "env": env or {}, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        return self._read()["pid"]

    def wait(self) -> dict:
        """``{"pid", "exit"}`` or ``{"pid", "signal"}`` of the running job."""
        return self._read()

    def run(self, job: str, *, log: Path, env: dict[str, str] | None = None, **kwargs) -> dict:
        self.start(job, log=log, env=env, **kwargs)
        return self.wait()

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    serve()
