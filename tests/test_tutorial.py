"""docs/tutorial.md runs as written: a new SSL method from user code, trained end to end."""

from __future__ import annotations

import re
from pathlib import Path


def test_tutorial_runs():
    text = (Path(__file__).parents[1] / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/tutorial.md", "exec"), namespace)
    config = namespace["config"]
    assert config.encoder.name == "vit-top-k" and config.encoder.embed_dim == 192, "the swap kept the preset's width"
    assert config.masker.name == "block" and config.masker.patch_size == 8
