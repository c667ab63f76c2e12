"""A fuzz of the commands that read what a user saved or wrote: ``probe``, ``export``, ``viz``, ``import-weights``,
``push`` and ``check``, each with one hostile argument (a size, a probe name, a data edit, a source that is not
a run, a file where a folder goes, a format, a hub id, a file that is no Python).

Every example must end one of two clean ways: the command runs (exit 0), or it refuses in one line on stderr
(``jepakit: error: ...``, exit 1 or 2; argparse's own usage error, exit 2, counts too). A traceback, any
other exception, several lines of error or a hang is a defect. ``tests/test_fuzz.py`` runs a derandomised
sample; ``benchmarks/override_fuzz.py --commands N`` runs many more and records the counts.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from conftest import tiny_config
from fuzz import TimeLimit, time_limit

SECONDS = 60
#: The probe's settings besides the fuzzed one: small splits, no floor, the fast probes.
PROBE_BASE = ["--train", "16", "--val", "8", "--test", "8", "--floor-seeds", "0", "--probes", "linear,knn", "--quiet"]
SIZES = ["0", "-1", "1", "1000000000", "abc", "2.5"]
PROBE_OPTIONS = {
    "--train": SIZES,
    "--val": SIZES,
    "--test": SIZES,
    "--layers": ["0", "-1", "2", "99"],
    "--probes": ["", "linar", "knn,,linear", "linear,linear", "dense", "attentive"],
    "--floor-seeds": ["-1", "1"],
    "--seed": ["-1", "7"],
    "--test-data": ["/no/such/dir", "data.split=test", "data.seed=abc", "data.size=0", "encoder.depth=3", "NOTES"],
}
PROBE_EDITS = ["data.size=0", "data.size=-3", "data=imagefolder", "data.root=/no/such", "data.image_size=28",
               "data.image_size=0", "encoder.depth=3", "data=nope", "data.seed=1", "nonsense"]  # fmt: skip
SOURCES = ["RUN", "STEP", "NOTES", "BROKEN", "/no/such/run", "EMPTY", "random:ijepa-cpu", "random:nope"]
VIZ_RECIPES = ["ijepa-cpu", "nope", "clip-cpu", "mae-cpu"]
VIZ_EDITS = ["image_size=16", "image_size=28", "masker=random", "masker=nope", "data.size=0", "train.steps=0"]
IMPORT_SOURCES = ["RUN", "STEP", "NOTES", "BROKEN", "EMPTY", "/no/such/file.pth.tar"]
IMPORT_FORMATS = ["ijepa", "vjepa", "vjepa2", ""]
IMPORT_EDITS = ["encoder.num_heads=0", "encoder.num_heads=abc", "nonsense", "image_size=7"]
PUSH_REPOS = ["me/model", "no-slash", "a/b/c", ""]
CHECK_FILES = ["NOTES", "EMPTY", "/no/such/file.py", "no_such_module", "BROKEN"]
VIZ_OPTIONS = {
    "--images": ["0", "-1", "1", "64", "65", "100000"],
    "--seed": ["-1", "3"],
    "--out": ["NOTES", "EMPTY", "NODIR"],
}


def prepare(tmp: Path) -> dict[str, str]:
    """What the examples name: a tiny trained run, its step file, a text file, a truncated checkpoint, an empty
    folder and a path under a missing folder, by placeholder."""
    from jepakit.train import train

    steps = {"steps": 2, "warmup_steps": 1, "batch_size": 4, "checkpoint_every": 1, "keep_checkpoints": 2}
    train(tiny_config("ijepa", masker={"min_keep": 4}, data={"size": 16}, train=steps), tmp / "run", progress=False)
    (tmp / "notes.txt").write_text("not a checkpoint\n")
    step = next((tmp / "run" / "checkpoints").glob("step-*.pt"))
    (tmp / "broken.pt").write_bytes(step.read_bytes()[:1000])
    (tmp / "empty").mkdir()
    return {
        "RUN": str(tmp / "run"),
        "STEP": str(step),
        "NOTES": str(tmp / "notes.txt"),
        "BROKEN": str(tmp / "broken.pt"),
        "EMPTY": str(tmp / "empty"),
        "NODIR": str(tmp / "missing" / "masks.png"),
        "OUT": str(tmp / "out"),
    }


@st.composite
def commands(draw: Any) -> list[str]:
    """A command line with placeholders (``RUN``, ``NOTES``, ...) and one hostile part."""
    command = draw(st.sampled_from(["probe", "export", "viz", "import-weights", "push", "check"]))
    if command == "import-weights":
        argv = [
            "import-weights",
            draw(st.sampled_from(IMPORT_SOURCES)),
            "--format",
            draw(st.sampled_from(IMPORT_FORMATS)),
        ]
        argv += ["--out", draw(st.sampled_from(["OUT/imported", "NOTES", "RUN"]))]
        return [*argv, *draw(st.sampled_from([[]] + [[e] for e in IMPORT_EDITS]))]
    if command == "push":  # the hub is offline in the tests: a push that gets as far as the upload is refused there
        return ["push", draw(st.sampled_from(SOURCES[:6])), draw(st.sampled_from(PUSH_REPOS))]
    if command == "check":
        return ["check", draw(st.sampled_from(CHECK_FILES)), *draw(st.sampled_from([[], ["loss.delta=2"], ["nope=1"]]))]
    if command == "export":
        source = draw(st.sampled_from(SOURCES[:6]))
        return ["export", source, *draw(st.sampled_from([[], ["--out", "OUT/x"], ["--out", "NOTES"]]))]
    if command == "viz":
        argv = ["viz", "masks", draw(st.sampled_from(VIZ_RECIPES)), "--out", "OUT/masks.png", "--images", "2"]
        if draw(st.booleans()):
            return [*argv, draw(st.sampled_from(VIZ_EDITS))]
        option = draw(st.sampled_from(sorted(VIZ_OPTIONS)))
        return [*argv, option, draw(st.sampled_from(VIZ_OPTIONS[option]))]
    argv = ["probe", "RUN", *PROBE_BASE, "--out", "OUT/probe"]
    what = draw(st.sampled_from(["source", "edit", "option"]))
    if what == "source":
        argv[1] = draw(st.sampled_from(SOURCES))
        return argv
    if what == "edit":
        return [*argv, draw(st.sampled_from(PROBE_EDITS))]
    option = draw(st.sampled_from(sorted(PROBE_OPTIONS)))
    value = draw(st.sampled_from(PROBE_OPTIONS[option]))
    if option in argv:
        argv[argv.index(option) + 1] = value
        return argv
    return [*argv, option, value]


def run(argv: list[str], places: dict[str, str]) -> tuple[str, str]:
    """(outcome, detail) of ``jepakit ARGV`` with the placeholders filled: ``ran``, ``refused`` or ``DEFECT``."""
    from jepakit.cli import main

    filled = []
    for part in argv:
        for key, path in places.items():
            part = part.replace(key, path) if part == key or part.startswith(key + "/") else part
        filled.append(part)
    err, out = io.StringIO(), io.StringIO()
    try:
        with time_limit(SECONDS), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(filled)
    except SystemExit as e:  # argparse: a value of the wrong type or an unknown choice
        code = e.code if isinstance(e.code, int) else 2
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        ok = code == 2 and lines and "error:" in lines[-1]
        return ("refused", lines[-1]) if ok else ("DEFECT", f"exit {code}: {err.getvalue()[-300:]}")
    except TimeLimit as e:
        return "DEFECT", str(e)
    except Exception as e:
        return "DEFECT", f"{type(e).__name__}: {e}"
    lines = [line for line in err.getvalue().splitlines() if line.strip() and "Warning" not in line]
    if code == 0:
        return "ran", out.getvalue().splitlines()[-1] if out.getvalue() else ""
    if code in (1, 2) and len(lines) == 1 and lines[0].startswith("jepakit: error: "):
        return "refused", lines[0]
    return "DEFECT", f"exit {code}: {err.getvalue()[-300:]}"
