"""The command line behind ``starter.py``: one module per command group, over the client, the
ops modules and the store (never over the HTTP API or the web app)."""
