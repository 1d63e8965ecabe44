"""The CLI's commands, one module per command group; ``syncd.cli`` registers them."""

from __future__ import annotations
