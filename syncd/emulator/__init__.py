"""The bundled Zoho CRM v8 emulator: OAuth, records, bulk write, metadata, limits and faults.

One base URL serves what Zoho spreads over three hosts (accounts, API, upload). Entry points:

- ``syncd.emulator.settings.EmulatorSettings`` - every knob, including one switch per behaviour
  the reference marks UNCONFIRMED;
- ``syncd.emulator.server.EmulatorServer`` - serves it with uvicorn in a background thread;
- ``syncd.emulator.admin.EmulatorAdmin`` - the test/demo client for the ``/_emulator`` routes;
- ``syncd.emulator.cli.emulator_command`` - ``syncd emulator``.

Nothing here is imported by syncd's core; this package only imports its heavy dependencies
(starlette, uvicorn) in the modules that need them, so ``syncd --help`` stays quick.
"""

from __future__ import annotations
