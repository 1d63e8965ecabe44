"""What a command takes from its click context: the settings, loaded once per invocation.

``syncd.cli`` puts ``config_path`` and ``debug`` on the root context's ``obj``; a command asks
for its settings here, so the command modules never import ``syncd.cli`` (it imports them).
"""

from __future__ import annotations

import click

from syncd.config import Settings, find_config_path, load_settings
from syncd.logs import setup_logging


def settings_of(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = load_settings(find_config_path(obj["config_path"]))
        log = obj["settings"].log
        setup_logging("DEBUG" if obj["debug"] else log.level, log.format)
    settings: Settings = obj["settings"]
    return settings
