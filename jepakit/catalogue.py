"""The component catalogue, generated from the registry: ``python -m jepakit.catalogue --write``.

``docs/components.md`` is this module's output; a test fails when it is stale.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from .config import field_docs
from .registry import KINDS, _all_configs, component_class, list_recipes, recipe_entry

__all__ = ["CATALOGUE", "render"]

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "components.md"


def _value(value: object) -> str:
    if dataclasses.is_dataclass(value):
        return f"`{value.type_id()}`"  # type: ignore[union-attr]
    return f"`{value!r}`".replace("|", "\\|")


def render() -> str:
    """The catalogue as markdown: recipes, then every kind's jepakit components with their fields."""
    lines = [
        "# Component catalogue",
        "",
        "Generated from the registry by `python -m jepakit.catalogue --write`; do not edit by hand.",
        "",
        "## Recipes",
        "",
        "| recipe | what |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {recipe_entry(name).help} |" for name in list_recipes()]
    configs = _all_configs()
    for kind in KINDS:
        if not configs[kind]:
            continue
        lines += ["", f"## {kind}", ""]
        for name, cls in sorted(configs[kind].items()):
            if not component_class(cls).__module__.startswith("jepakit."):
                continue  # the library's catalogue: components registered by user code are theirs
            doc = (component_class(cls).__doc__ or "").strip().splitlines()
            lines += [f"### `{name}`", ""]
            if doc:
                lines += [doc[0], ""]
            docs = field_docs(cls)
            fields = dataclasses.fields(cls)
            if not fields:
                lines += ["No fields.", ""]
                continue
            lines += ["| field | default | meaning |", "|---|---|---|"]
            for f in fields:
                default = f.default if f.default is not dataclasses.MISSING else None
                lines.append(f"| `{f.name}` | {_value(default)} | {docs[f.name]} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        CATALOGUE.write_text(render())
        print(f"wrote {CATALOGUE}")
    else:
        sys.stdout.write(render())
