"""The docs run as written: every Python block of README.md and docs/ runs, in one fresh process (blocks
register components, which a process may do once), each in a namespace of its own; then every component
and recipe the blocks registered passes the registry's generated tests (``jepakit.check``). A block that
is a fragment on purpose says so on the line before it (``<!-- fragment -->``); docs/tutorial.md's blocks
run in test_tutorial.py, with the commands between them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "tutorial.md")]
DRIVER = """
import json, sys
from jepakit.check import check_component, check_recipe, registered
before = registered()
for name, block in json.loads(sys.stdin.read()):
    try:
        exec(compile(block, name, "exec"), {"__name__": "__docs__"})
    except Exception as e:
        print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
        raise SystemExit(1)
new = sorted(registered() - before)
for kind, name in new:
    check_recipe(name) if kind == "recipe" else check_component(kind, name)
print(json.dumps(new))
"""


def blocks() -> list[tuple[str, str]]:
    """(where, code) of every Python block that is not marked a fragment."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"(<!-- fragment -->\n)?```python\n(.*?)```", text, flags=re.S):
            if not match.group(1):
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def test_every_python_block_of_the_docs_runs():
    found = blocks()
    assert {w.split(":")[0] for w, _ in found} >= {"README.md", "docs/design.md"}
    run = subprocess.run(
        [sys.executable, "-c", DRIVER], input=json.dumps(found), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    checked = {tuple(key) for key in json.loads(run.stdout.splitlines()[-1])}
    assert {("loss", "huber"), ("masker", "checker"), ("target_updater", "fixed-ema")} <= checked
