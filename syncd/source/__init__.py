"""The legacy table, the one resource syncd reads and flags.

``table`` is the SQL adapter (reflection and checks, keyset batches, the compare-and-set of the
flag; all legacy-table SQL), ``pg`` what it needs of psycopg on PostgreSQL, ``tombstones`` the
optional table of deleted keys, and ``memory`` an in-memory table that passes the same
contract tests (``tests/contract``) for engine tests.
"""
