"""syncd's configuration: one TOML file, validated once into frozen settings.

``find_config_path`` picks the file (``-c/--config``, ``$SYNCD_CONFIG``, /etc/syncd/config.toml);
``load_settings`` reads it, expands ``${VAR}`` in strings, reads ``<key>_file`` secrets, applies
the data-center presets and checks everything, raising one ``ConfigError`` that lists every
problem as ``"<file>: <dotted.key>: <what is expected>, got <value>"``. Nothing below this
package touches the raw TOML.

    durations.py  "5s"/"1h30m" durations and "every 12h"/cron schedules
    presets.py    the Zoho hosts of each data center
    settings.py   the frozen dataclasses handed to the rest of syncd, and ``Secret``
    values.py     validators of single values (names, URLs, zones, ranges)
    schema.py     the file's shape as pydantic models, and their conversion to settings
    problems.py   pydantic errors rendered as syncd problems (dotted keys, did-you-mean)
    loader.py     finding and reading the file, interpolation, ``*_file`` secrets
"""

from __future__ import annotations

from syncd.config.durations import Schedule, parse_duration, parse_schedule
from syncd.config.loader import (
    DEFAULT_CONFIG_PATH,
    find_config_path,
    load_crm_settings,
    load_settings,
)
from syncd.config.presets import CUSTOM_DATA_CENTER, DATA_CENTERS, Hosts
from syncd.config.settings import (
    CrmOnlySettings,
    CrmSettings,
    LogSettings,
    MetricsSettings,
    PipelineSettings,
    Secret,
    Settings,
    SourceSettings,
    StateSettings,
    default_state_url,
)

__all__ = [
    "CUSTOM_DATA_CENTER",
    "DATA_CENTERS",
    "DEFAULT_CONFIG_PATH",
    "CrmOnlySettings",
    "CrmSettings",
    "Hosts",
    "LogSettings",
    "MetricsSettings",
    "PipelineSettings",
    "Schedule",
    "Secret",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "default_state_url",
    "find_config_path",
    "load_crm_settings",
    "load_settings",
    "parse_duration",
    "parse_schedule",
]
