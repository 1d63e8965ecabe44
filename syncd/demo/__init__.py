"""`syncd demo`: the whole flow on a made-up order system, with no Zoho account needed.

    orders.py    the legacy orders table: realistic rows (a few invalid for the CRM), the
                 index and trigger `syncd ddl` suggests, and the edits of "the legacy app"
    scenario.py  the script: emulator, config file, the index and trigger, initial sync
    realtime.py  the daemon in a thread while the shop edits rows, and what it did about them
    report.py    what happened, read back from the state store, and the mirror check

Everything runs through the real code paths (config file, ``App``, ``run_drain``, ``Daemon``)
against the bundled emulator; the command in ``syncd.commands.demo`` only narrates.
"""

from __future__ import annotations
