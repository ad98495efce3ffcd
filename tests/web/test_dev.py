"""``starter.py dev``'s part of the web app: local users with fixed keys, and its port."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from conveyor.dev import KEYS_FILE, ensure_dev_users, web_port_to_use
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


def test_a_taken_web_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        chosen = web_port_to_use(port)
        assert chosen != port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", chosen))
