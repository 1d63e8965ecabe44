from __future__ import annotations

from syncd.cli import main

main()
