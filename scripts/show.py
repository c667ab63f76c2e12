"""Show a recipe: its config tree (with overrides) and the size of the model it builds.

python scripts/show.py ijepa predictor.depth=4 masker=random
"""

from __future__ import annotations

import argparse

from jepakit import describe, get_config, list_recipes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=list_recipes(), metavar="RECIPE", help=", ".join(list_recipes()))
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. predictor.depth=4 or masker=random")
    parser.add_argument("--no-build", action="store_true", help="print the config only")
    args = parser.parse_args()

    cfg = get_config(args.recipe, *args.overrides)
    describe(cfg)
    if not args.no_build:
        model = cfg.build()
        for name, module in {**model.trainable_modules(), "target_encoder": model.target_encoder}.items():
            if module is not None:
                print(f"{name:>16}: {sum(p.numel() for p in module.parameters()) / 1e6:8.2f} M parameters")


if __name__ == "__main__":
    main()
