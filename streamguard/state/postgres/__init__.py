"""The PostgreSQL backend of the state (fleet mode): one database shared by every instance.

``database`` owns the connection pool and the migrations (``schema``); ``fleet`` keeps the
instances and the leases of the desired streams; ``results`` and ``outbox`` are the shared,
fenced counterparts of the SQLite stores.
"""
