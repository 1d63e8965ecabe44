"""Finding and reading the config file: TOML, ${VAR} interpolation, ``*_file`` secrets."""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from syncd.config.problems import Loc, Problems
from syncd.config.schema import SECRET_KEYS, ConfigFile, CrmOnlyFile, validation_context
from syncd.config.settings import CrmOnlySettings, Settings
from syncd.config.values import show
from syncd.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/syncd/config.toml")
_FileModel = TypeVar("_FileModel", ConfigFile, CrmOnlyFile)

# "$${" is a literal "${"; "${NAME}" an environment variable; anything else after "${" is a typo
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[^}]*)\}|\$\{")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def find_config_path(cli_value: str | None, *, default: Path = DEFAULT_CONFIG_PATH) -> Path:
    """The config file: ``-c/--config``, else ``$SYNCD_CONFIG``, else ``default``.

    Raises ``ConfigError`` naming the path and where it came from when there is no file there.
    """
    if cli_value:
        path, origin = Path(cli_value).expanduser(), "given with -c/--config"
    elif os.environ.get("SYNCD_CONFIG"):
        path, origin = Path(os.environ["SYNCD_CONFIG"]).expanduser(), "from $SYNCD_CONFIG"
    else:
        path, origin = default, "the default location; pass -c/--config or set $SYNCD_CONFIG"
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found ({origin})"])
    return path


def load_settings(path: Path) -> Settings:
    """Read, interpolate and validate the config file; ``ConfigError`` lists every problem."""
    settings = _validated(path, ConfigFile).build(path)
    logger.debug(
        "config loaded from %s (%d pipelines)",
        path,
        len(settings.pipelines),
        extra={"event": "config_loaded", "path": str(path), "pipelines": len(settings.pipelines)},
    )
    return settings


def load_crm_settings(path: Path) -> CrmOnlySettings:
    """As ``load_settings``, for ``syncd import``: [source] and [[pipelines]] may be absent."""
    return _validated(path, CrmOnlyFile).build(path)


def _validated(path: Path, model: type[_FileModel]) -> _FileModel:
    raw = _read_toml(path)
    problems = Problems()
    config = _interpolate(raw, (), os.environ, problems)
    _read_secret_files(config, path.parent, problems)
    validated: _FileModel | None = None
    try:
        validated = model.model_validate(config, context=validation_context(config))
    except ValidationError as exc:
        problems.add_pydantic(exc.errors(include_url=False))
    # raised outside the except block: pydantic's error holds the input, secrets included,
    # and must not ride along as __context__
    if problems.found or validated is None:
        raise ConfigError(problems.lines(path.name))
    return validated


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the config file is not UTF-8 text"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends in "(at line L, column C)"; lead with the position instead
        detail = str(exc)
        where = re.search(r" \(at (line \d+, column \d+)\)$", detail)
        if where is not None:
            detail = f"{where.group(1)}: invalid TOML: {detail[: where.start()]}"
        else:
            detail = f"invalid TOML: {detail}"
        raise ConfigError([f"{path.name}: {detail}"]) from None


def _interpolate(node: Any, loc: Loc, env: Mapping[str, str], problems: Problems) -> Any:
    """A copy of ``node`` with ${VAR} replaced in every string value."""
    if isinstance(node, str):
        return _expand(node, loc, env, problems)
    if isinstance(node, dict):
        return {key: _interpolate(value, (*loc, key), env, problems) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(item, (*loc, index), env, problems) for index, item in enumerate(node)]
    return node


def _expand(text: str, loc: Loc, env: Mapping[str, str], problems: Problems) -> str:
    def replace(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group("name")
        if token == "$${":
            return "${"
        if name is None or not _VARIABLE_NAME.fullmatch(name):
            problems.add(loc, 'has a malformed "${": write ${NAME} for a variable, $${ for "${"')
        elif name not in env:
            problems.add(loc, f"uses ${{{name}}}, but the environment variable {name} is not set")
        else:
            return env[name]
        return token

    return _REFERENCE.sub(replace, text)


def _secret_tables(config: dict[str, Any], section: str) -> list[tuple[Loc, dict[str, Any]]]:
    """The tables of ``section``: itself, or each table of an array of tables ([[notify]])."""
    node = config.get(section)
    if isinstance(node, dict):
        return [((section,), node)]
    if isinstance(node, list):
        return [((section, i), table) for i, table in enumerate(node) if isinstance(table, dict)]
    return []  # missing, or the wrong type: reported by validation


def _read_secret_files(config: dict[str, Any], base: Path, problems: Problems) -> None:
    """Replace each ``<key>_file`` by ``<key>`` holding the file's text, trailing newlines off."""
    for section, keys in SECRET_KEYS.items():
        for where, table in _secret_tables(config, section):
            for key in keys:
                _read_secret_key(table, where, key, base, problems)


def _read_secret_key(
    table: dict[str, Any], where: Loc, key: str, base: Path, problems: Problems
) -> None:
    file_key = f"{key}_file"
    if file_key not in table:
        return
    file_value = table.pop(file_key)
    if key in table:
        problems.add((*where, key), f"set either {key} or {file_key}, not both")
        return
    loc = (*where, file_key)
    secret = None
    if not problems.covers(loc):  # an interpolation problem in the path itself
        secret = _read_secret_file(file_value, loc, base, problems)
    if secret is None:
        problems.hide((*where, key))  # its "is required" would repeat the problem
    else:
        table[key] = secret


def _read_secret_file(value: object, loc: Loc, base: Path, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value:
        problems.add(loc, f"must be the path of a file holding the secret, got {show(value)}")
        return None
    path = base / Path(value).expanduser()  # relative paths are relative to the config file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(loc, f'cannot read "{path}": {exc.strerror}')
        return None
    except UnicodeDecodeError:
        problems.add(loc, f'"{path}" is not UTF-8 text')
        return None
    secret = text.rstrip("\r\n")
    if not secret:
        problems.add(loc, f'"{path}" is empty')
        return None
    if loc[-1] not in PUBLIC_FILE_KEYS and _others_may_read(path):
        mode = stat.S_IMODE(path.stat().st_mode)
        problems.add(
            loc,
            f'"{path}" holds a secret and other users may read it (mode {mode:04o}): '
            f"chmod 600 it (or pass it with systemd's LoadCredential=)",
        )
        return None
    return secret


PUBLIC_FILE_KEYS = frozenset({"client_id_file"})
"""*_file keys whose value is no secret (Zoho shows the client id in every OAuth URL)."""


def _others_may_read(path: Path) -> bool:
    """Whether users other than the owner and its group may read (or change) the file."""
    return bool(path.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH))
