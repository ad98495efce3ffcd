"""``starter.py dev``'s part of the web app: local users with fixed keys, and its port."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from conveyor.dev import KEYS_FILE, DevPorts, busy_ports, ensure_dev_users
from store.db import transaction
from store.users import Role, authenticate


def test_dev_users_keep_their_keys_across_restarts(
    store_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    first = ensure_dev_users(store_sessions, tmp_path)
    again = ensure_dev_users(store_sessions, tmp_path)
    assert first == again
    assert stat.S_IMODE((tmp_path / KEYS_FILE).stat().st_mode) == 0o600
    with transaction(store_sessions) as session:
        admin = authenticate(session, first["admin"])
        ana = authenticate(session, first["ana"])
    assert admin is not None and admin.role is Role.ADMIN
    assert ana is not None and "writer" in ana.contributor_roles


def test_a_taken_web_port_is_reported_not_replaced() -> None:
    # dev once moved to a random port without a word; now it names the port and the option.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problems = busy_ports(
            DevPorts(web=port, metrics=None, app_metrics=None),
            own_temporal=False,
            metrics_host="127.0.0.1",
        )
    assert problems == [
        f"port {port} (the web app) is already in use; "
        "choose another with --web-port (or CONVEYOR_WEB_PORT)"
    ]
    assert (
        busy_ports(
            DevPorts(web=port, metrics=None, app_metrics=None),
            own_temporal=False,
            metrics_host="127.0.0.1",
        )
        == []
    )
