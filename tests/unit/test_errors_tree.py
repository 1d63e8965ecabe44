"""The error tree in ``syncd.errors``'s docstring names every error syncd raises on purpose."""

from __future__ import annotations

import importlib
import pkgutil

import syncd
from syncd import errors


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_syncd_error_is_in_the_tree_and_defined_where_it_says() -> None:
    for module in pkgutil.walk_packages(syncd.__path__, "syncd."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    tree = errors.__doc__ or ""
    for cls in _subclasses(errors.SyncdError):
        assert f" {cls.__name__} " in tree, f"{cls.__module__}.{cls.__name__} is not in the tree"
        if cls.__module__ != "syncd.errors":
            assert f"``{cls.__module__}``" in tree, f"{cls.__name__}: say where it lives"
