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


#: Registered components whose docstring has no example yet (the text side needs model files or a fitted
#: tokenizer, the methods and conditioners a whole batch): this list may only shrink.
WITHOUT_EXAMPLES: set[str] = set()


def test_every_registered_component_shows_an_example_but_the_listed_ones():
    from jepakit.registry import component_class, config_class, list_components

    classes = {f"{k}/{n}": component_class(config_class(k, n)) for k, names in list_components().items() for n in names}
    ours = {name: cls for name, cls in classes.items() if cls.__module__.startswith("jepakit.")}  # not the tests'
    lacking = {name for name, cls in ours.items() if ">>>" not in (cls.__doc__ or "")}
    assert lacking <= WITHOUT_EXAMPLES, f"give these an Example: {sorted(lacking - WITHOUT_EXAMPLES)}"
    assert WITHOUT_EXAMPLES <= lacking, (
        f"these have one now: drop them from the list {sorted(WITHOUT_EXAMPLES - lacking)}"
    )
