"""The runbook's next step per error code, read from the README's runbook table (its one source).

The README table is what ops read; the console shows the same row next to a failed order rather than
keeping a copy that would drift. A code the table does not name falls back to a pointer at the
runbook, never to an invented remedy.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

RUNBOOK_HEADING = "## Runbook (ops)"
FALLBACK_STEP = "See the Runbook (ops) section of the README."
_ROW_RE = re.compile(r"^\|(?P<codes>[^|]+)\|(?P<step>.+)\|\s*$")
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def readme_path() -> Path:
    """``ORDERFLOW_README`` or the README at the root of the checkout the package is installed from."""
    override = os.environ.get("ORDERFLOW_README")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "README.md"


def parse_runbook(markdown: str) -> dict[str, str]:
    """``{error code: what to do}`` from the runbook section's table rows (``A / B`` rows name two codes)."""
    steps: dict[str, str] = {}
    in_section = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            in_section = line.strip() == RUNBOOK_HEADING
            continue
        if not in_section:
            continue
        match = _ROW_RE.match(line.strip())
        if not match:
            continue
        codes = [c.strip().strip("`") for c in match.group("codes").split("/")]
        step = match.group("step").strip()
        if not all(_CODE_RE.match(c) for c in codes):
            continue  # header or separator row
        for code in codes:
            steps[code] = step
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
