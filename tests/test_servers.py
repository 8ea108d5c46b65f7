"""One object per database server: looked up once by name, an unknown one refused, the rule kept."""

from __future__ import annotations

import ast
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_mock_engine
from sqlalchemy.exc import DBAPIError

from db.connect import Timeouts, connect
from db.errors import unavailable
from db.servers import SERVERS, UnknownServer, server_for, server_of

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("db", "engine", "scheduler", "channels")
SERVER_CODE = (ROOT / "db" / "servers", ROOT / "db" / "migrations")  # where a server's name may be asked
ASKS_THE_NAME = re.compile(r"dialect\.name|get_backend_name")


def test_an_unknown_database_server_is_refused_in_one_line_when_connecting():
    with pytest.raises(UnknownServer) as refused:
        connect("oracle://scott:tiger@localhost/bookings")
    assert str(refused.value) == "unsupported database 'oracle': apptflow runs on sqlite, postgresql, mysql, mariadb"


def test_an_engine_on_a_server_apptflow_does_not_know_has_no_server_object():
    engine = create_mock_engine("mssql://", executor=lambda *_: None)
    with pytest.raises(UnknownServer, match="^unsupported database 'mssql': apptflow runs on "):
        server_for(engine)


def test_mariadb_is_mysqls_server_whatever_driver_the_url_names():
    assert server_of("mariadb://u@h/db") is server_of("mysql+mysqldb://u@h/db") is server_of("mysql://u@h/db")
    assert server_of("postgresql://u@h/db") is server_of("postgresql+psycopg2://u@h/db")


def test_a_server_refuses_what_it_cannot_do_by_its_own_name(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        with engine.connect() as conn, pytest.raises(NotImplementedError, match="^SQLite has no session locks"):
            server_for(conn).try_lock(conn, "partition", 0)
    finally:
        engine.dispose()


def test_every_server_declares_every_capability():
    capabilities = ("label", "names", "driver", "update_returning", "notify", "shared", "schemas", "table_prefix",
                    "comparable_times", "depth_in_session")
    for server in SERVERS:
        missing = [name for name in capabilities if not hasattr(server, name)]
        assert missing == [], server


def test_no_module_outside_the_server_objects_asks_the_servers_name():
    asking = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            if any(path.is_relative_to(place) for place in SERVER_CODE):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if ASKS_THE_NAME.search(line):
                    asking.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert asking == []


def _imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_mapping_model_and_the_servers_installers_import_each_other_one_way():
    installers = {"db.pg_mapping", "db.mysql_mapping"}
    assert not _imports("db.mapping_file") & (installers | {"db.mapping"})
    for installer in installers:
        assert "db.mapping" not in _imports(installer), installer
    assert not _imports("db.mapping") & installers


def test_connections_keep_alive_and_a_daemons_statements_end_at_their_timeout(db_url, backend):
    """A dead peer is found by keepalives within dead_peer (both ends, on PostgreSQL), a statement past
    statement_timeout is ended by the server as an outage worth waiting out; the commands' engines
    (no statement timeout: `db init` may run long) only keep alive."""
    if backend == "sqlite":
        pytest.skip("SQLite is a file: no connection to keep alive")
    engine = connect(db_url, timeouts=Timeouts(dead_peer=6, statement=0.5))
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if backend == "postgresql":
                client = raw.info.get_parameters()
                assert [client[k] for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                            "keepalives_count", "tcp_user_timeout")] == ["1", "2", "1", "4", "6000"]
                assert [conn.exec_driver_sql(f"SHOW {k}").scalar() for k in (
                    "statement_timeout", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
                ] == ["500ms", "2", "1", "4"]
            else:
                sock = raw._sock
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                assert [sock.getsockopt(socket.IPPROTO_TCP, o) for o in (
                    socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT, socket.TCP_USER_TIMEOUT)
                ] == [2, 1, 4, 6000]
                assert conn.exec_driver_sql("SELECT @@max_statement_time").scalar() == 0.5
        sleep = "SELECT pg_sleep(2)" if backend == "postgresql" else "SELECT SLEEP(2) FROM DUAL"
        with pytest.raises(DBAPIError) as ended, engine.connect() as conn:
            conn.exec_driver_sql(sleep).all()
        assert unavailable(ended.value), ended.value
    finally:
        engine.dispose()
    commands = connect(db_url, timeouts=Timeouts(dead_peer=6))
    try:
        with commands.connect() as conn:
            unbounded = "SHOW statement_timeout" if backend == "postgresql" else "SELECT @@max_statement_time"
            assert conn.exec_driver_sql(unbounded).scalar() in ("0", 0)
    finally:
        commands.dispose()
