"""Every example in jepakit's docstrings runs and shows what it says (``>>>`` lines, run by doctest)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import jepakit


def test_every_docstring_example_in_the_library_runs():
    modules = [importlib.import_module(m.name) for m in pkgutil.walk_packages(jepakit.__path__, "jepakit.")]
    tried = failed = 0
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
        tried, failed = tried + result.attempted, failed + result.failed
    assert failed == 0
    assert tried >= 20  # the components' examples (encoder, predictor, masker, losses, target updater)
