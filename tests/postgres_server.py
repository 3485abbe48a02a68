"""A throw-away PostgreSQL server for tests: the session fixture `postgres_url` yields
postgresql://postgres:PASSWORD@127.0.0.1:PORT/harness_test.

Finds initdb/pg_ctl under /usr/lib/postgresql/*/bin (Debian's package; `make system-deps` installs it) or
on PATH, runs the server as the `postgres` user when the tests run as root (PostgreSQL refuses root), on a
free port of 127.0.0.1 with the data folder in a temporary directory, and stops it at teardown.
Skips with the reason when PostgreSQL or psycopg2 is missing or the server cannot start.

A pytest plugin: tests/conftest.py registers it (`pytest_plugins`), so any test takes `postgres_url` as an
argument; PASSWORD is the database password, for tests that check it is never printed or written.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PASSWORD = "harness-secret"


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    return ["su", user, "-s", "/bin/sh", "-c", " ".join(cmd)]


@pytest.fixture(scope="session")
def postgres_url():
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install psycopg2-binary)")
    bindir = _bin_dir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, or make system-deps)")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    data = root / "data"
    if user:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
    port = _free_port()
    started = False
    try:
        r = subprocess.run(
            _as_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                user,
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            pytest.skip(f"initdb failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        r = subprocess.run(
            _as_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    opts,
                    "-l",
                    str(root / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                user,
            ),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if r.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else r.stderr
            pytest.skip(f"PostgreSQL did not start: {log.strip().splitlines()[-1:]}")
        started = True
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ALTER USER postgres PASSWORD '{PASSWORD}'")
            cur.execute("CREATE DATABASE harness_test")
        conn.close()
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/harness_test"
    finally:
        if started:
            subprocess.run(
                _as_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
