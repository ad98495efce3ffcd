"""What every command-line entry point needs: a Temporal connection, the store, exit codes.

Connecting and its errors live in :mod:`conveyor.connect` (the HTTP API shares them); they are
re-exported here for the commands.
"""

from __future__ import annotations

from conveyor.connect import CliError as CliError
from conveyor.connect import Unavailable as Unavailable
from conveyor.connect import connect_conveyor as connect_conveyor
from conveyor.connect import describe_store as describe_store
from conveyor.connect import sqlite_path as sqlite_path
from conveyor.connect import store_sessions as store_sessions

EXIT_OK = 0
EXIT_FAILED = 1
"""The command ran and found a problem it reports (drift, no work to claim), or failed
unexpectedly."""
EXIT_REJECTED = 2
"""The task refused the command (the reason is printed)."""
EXIT_INVALID = 3
"""Bad input: arguments, files, ids or names that do not exist, an out-of-date store schema."""
EXIT_UNAVAILABLE = 4
"""Something the command needs cannot be reached: Temporal, the store, a worker (no answer in
time), or a port ``dev`` needs is taken."""
