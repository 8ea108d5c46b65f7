"""The event-latency floor: the least a consumer can do, in a process of its own.

    python -m bench.floor DATABASE_URL RECEIVER_URL POLL_SECONDS

It waits for a change (LISTEN on PostgreSQL; a poll every POLL_SECONDS on
SQLite and MariaDB, the daemon's own default interval there), reads the new
appointment events and posts each appointment id to the receiver with one
``requests.Session``. No
workflow, no outbox, no record: what is left of apptflow's latency above this
is apptflow's own.
"""

from __future__ import annotations

import json
import sys
import time

import requests
from sqlalchemy import text

from db.connect import connect, own_table, read_only
from db.servers import server_for


def main(url: str, receiver: str, poll: float) -> None:
    engine = connect(url)
    session = requests.Session()
    listener = None
    server = server_for(engine)
    if server.notify:
        listener = server.listen(engine.url)
    events = own_table(engine, "change_events")
    with engine.connect() as conn:
        last = conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {events}")).scalar_one()
    print("ready", flush=True)
    while True:
        if listener is not None:
            for _ in listener.notifies(timeout=poll, stop_after=1):
                pass
        else:
            time.sleep(poll)
        with read_only(engine) as conn:
            rows = conn.execute(text(f"SELECT id, row_id FROM {events} WHERE id > :last AND "
                                     "table_name = 'appointments' AND op = 'INSERT' ORDER BY id"),
                                {"last": last}).all()
        for event_id, row_id in rows:
            session.post(f"{receiver}/floor", data=json.dumps({"id": str(row_id)}),
                         headers={"Content-Type": "application/json"}, timeout=30).close()
            last = event_id


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
