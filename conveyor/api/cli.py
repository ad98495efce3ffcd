"""The HTTP API's users and keys: ``user …`` (:mod:`conveyor.server` adds ``api``, which serves
the API).

``starter.py`` adds these commands through :func:`conveyor.server.register`::

    python starter.py user create ana --role contributor --roles labeler,reviewer
    python starter.py user list
    python starter.py user key ana --label laptop      # another key
    python starter.py user revoke ana --prefix cvk_AbCdEfGh
    python starter.py user disable ana
    python starter.py api --host 127.0.0.1 --port 8000

Users live in the store (``CONVEYOR_DATABASE_URL``); a key is printed once, when it is made,
and only its hash is kept.
"""

from __future__ import annotations

import argparse
import sys

from conveyor.connect import CliError, store_sessions
from store.db import transaction
from store.users import (
    Role,
    create_key,
    disable_user,
    get_user,
    list_keys,
    list_users,
    revoke_keys,
    upsert_user,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``user`` to the CLI's subcommands (:func:`conveyor.server.register` adds ``api``)."""
    user = sub.add_parser("user", help="users and API keys of the HTTP API and the web app")
    usub = user.add_subparsers(dest="action", required=True)

    create = usub.add_parser(
        "create",
        help="create a user (or change a user's role and re-enable them) and print a new key",
    )
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument(
        "--roles", default="", help="contributors: their contributor roles, comma-separated"
    )
    create.add_argument("--label", default="", help="a note on the key, e.g. 'laptop'")
    create.set_defaults(handler=cmd_user_create)

    listing = usub.add_parser("list", help="every user, their role and their keys")
    listing.set_defaults(handler=cmd_user_list)

    disable = usub.add_parser("disable", help="disable a user: their keys stop working at once")
    disable.add_argument("name")
    disable.set_defaults(handler=cmd_user_disable)

    key = usub.add_parser("key", help="make another API key for a user (printed once)")
    key.add_argument("name")
    key.add_argument("--label", default="")
    key.set_defaults(handler=cmd_user_key)

    revoke = usub.add_parser("revoke", help="revoke a user's keys (or just one, by its prefix)")
    revoke.add_argument("name")
    revoke.add_argument("--prefix", help="the key's first characters, as `user list` shows them")
    revoke.set_defaults(handler=cmd_user_revoke)


def _roles(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def _print_key(name: str, key: str) -> None:
    print(key)
    print(
        f"the API key of {name}: shown once, only its hash is stored. Send it as "
        "'Authorization: Bearer <key>'",
        file=sys.stderr,
    )


async def cmd_user_create(args: argparse.Namespace) -> int:
    with transaction(store_sessions()) as session:
        user = upsert_user(session, args.name, args.role, _roles(args.roles))
        key = create_key(session, user.name, args.label)
    roles = f" ({', '.join(user.contributor_roles)})" if user.contributor_roles else ""
    print(f"user {user.name}: {user.role.value}{roles}", file=sys.stderr)
    _print_key(user.name, key)
    return 0


async def cmd_user_list(args: argparse.Namespace) -> int:
    with transaction(store_sessions()) as session:
        users = list_users(session)
        keys = list_keys(session)
    if not users:
        print("no users yet (python starter.py user create NAME --role admin)")
    for user in users:
        roles = ",".join(user.contributor_roles) or "-"
        state = "disabled" if user.disabled else "enabled"
        print(f"{user.name:<24} {user.role.value:<12} {roles:<30} {state}")
        for info in (k for k in keys if k.user == user.name):
            used = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never used"
            status = "revoked" if info.revoked else "live"
            label = f" {info.label}" if info.label else ""
            print(f"    key {info.prefix}…  {status:<8} {used}{label}")
    return 0


async def cmd_user_disable(args: argparse.Namespace) -> int:
    with transaction(store_sessions()) as session:
        user = disable_user(session, args.name)
    print(f"user {user.name} is disabled; their keys no longer work")
    return 0


async def cmd_user_key(args: argparse.Namespace) -> int:
    with transaction(store_sessions()) as session:
        user = get_user(session, args.name)
        if user.disabled:
            raise CliError(
                f"user {user.name} is disabled; re-enable them with `user create {user.name} "
                f"--role {user.role.value}` first"
            )
        key = create_key(session, user.name, args.label)
    _print_key(user.name, key)
    return 0


async def cmd_user_revoke(args: argparse.Namespace) -> int:
    with transaction(store_sessions()) as session:
        get_user(session, args.name)
        count = revoke_keys(session, args.name, args.prefix)
    which = f" starting {args.prefix}" if args.prefix else ""
    print(f"revoked {count} key(s){which} of {args.name}")
    return 0 if count or not args.prefix else 1
