"""User code a run needs: the modules and ``.py`` files given with ``--import``, imported and remembered.

A run made with ``jepakit --import my_method.py train ...`` records what it imported (a file by its
absolute path, a module by its name) in its ``config.json`` and checkpoints, so that ``probe``,
``export`` and ``--resume`` import the same code before they read the run, and say in one line what
to pass when a file is gone.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from .config import MissingFileError

__all__ = ["import_recorded", "import_user_code", "recorded_name"]


def recorded_name(name: str) -> str:
    """How a run records ``name``: a ``.py`` file by its absolute path (the run may be read from elsewhere),
    a module by its name."""
    return str(Path(name).resolve()) if name.endswith(".py") else name


def import_user_code(name: str) -> None:
    """Import a module by name, or a ``.py`` file by path (registering what it defines); a file imported
    already is not imported again (registering twice would clash)."""
    path = Path(name)
    if path.suffix != ".py":
        importlib.import_module(name)
        return
    if not path.is_file():
        raise MissingFileError(f"--import {name}: no such file")
    loaded = sys.modules.get(path.stem)
    # built-in and namespace modules have no __file__
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
        return
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise MissingFileError(f"--import {name}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)


def import_recorded(names: Iterable[str], run: str | Path) -> None:
    """Import what ``run`` recorded it was made with; one line naming what to pass when it is gone."""
    for name in names:
        try:
            import_user_code(name)
        except (MissingFileError, ModuleNotFoundError) as e:
            raise MissingFileError(
                f"{str(run)!r} was made with --import {name}, which cannot be imported here ({e}); pass "
                f"--import PATH_OR_MODULE before the command"
            ) from None
