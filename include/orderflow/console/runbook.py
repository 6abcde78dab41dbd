"""The runbook's next step per error code, read from the README's runbook table (its one source).

The README table is what ops read; the console shows the same row next to a failed order rather than
keeping a copy that would drift. A code the table does not name falls back to a pointer at the
runbook, never to an invented remedy.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from orderflow import settings

log = logging.getLogger(__name__)

RUNBOOK_HEADING = "## Runbook (ops)"
FALLBACK_STEP = "See the Runbook (ops) section of the README."
STEP_COLUMN = "what to do"
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def readme_path() -> Path:
    """``ORDERFLOW_README`` or the README at the root of the checkout the package is installed from."""
    override = settings.readme_override()
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "README.md"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_runbook(markdown: str) -> dict[str, str]:
    """``{error code: what to do}`` from the runbook's table whose header starts with ``code``.

    The step is the ``what to do`` column (the last one when the header names none); a row naming
    ``A / B`` gives both codes the same step.
    """
    steps: dict[str, str] = {}
    in_section = False
    step_col: int | None = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            in_section, step_col = line.strip() == RUNBOOK_HEADING, None
            continue
        if not in_section or not line.lstrip().startswith("|"):
            step_col = None if not line.strip() else step_col
            continue
        cells = _cells(line)
        if step_col is None:
            if cells and cells[0].lower() == "code":
                header = [c.lower() for c in cells]
                step_col = header.index(STEP_COLUMN) if STEP_COLUMN in header else len(cells) - 1
            continue
        if len(cells) <= step_col:
            continue
        codes = [c.strip().strip("`") for c in cells[0].split("/")]
        if all(_CODE_RE.match(c) for c in codes):
            for code in codes:
                steps[code] = cells[step_col]
    return steps


@lru_cache(maxsize=1)
def runbook_steps() -> dict[str, str]:
    """The parsed table, read once per process; empty when the README is not deployed next to the code."""
    path = readme_path()
    try:
        return parse_runbook(path.read_text(encoding="utf-8"))
    except OSError:
        log.warning("runbook: %s not readable; the console shows a pointer to the runbook instead", path)
        return {}


def next_step(code: str | None) -> str:
    """What ops do next for ``code``, as the runbook says it."""
    if not code:
        return FALLBACK_STEP
    return runbook_steps().get(code.strip(), FALLBACK_STEP)
