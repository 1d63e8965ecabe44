"""The sync engine: decisions (planner, flush rule) and thin loops over the ports."""

from __future__ import annotations
