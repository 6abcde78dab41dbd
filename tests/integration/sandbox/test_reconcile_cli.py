"""The command lines of the reconciliation sandbox: ``seed --provisioned`` and ``drift``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderflow_sandbox.cli import main
from orderflow_sandbox.drift import CATEGORIES, DRIFT_EXPECTED_FILE
from orderflow_sandbox.server import Sandbox


def test_seed_provisioned_then_drift_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--data-dir", str(tmp_path), "seed", "--orders", "120", "--provisioned", "--seed", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["orders"] == 120 and summary["whmcs_orders"] == 120 - 3 and "expected" not in summary
    expected = json.loads(Path(summary["expected_outcomes_file"]).read_text())
    assert len(expected) == 120 and set(expected.values()) == {"IN_SYNC"}

    with Sandbox(tmp_path, components={"salesforce", "whmcs"}):  # drift talks to a running sandbox
        assert main(["drift", "--data-dir", str(tmp_path), "--per-category", "1", "--seed", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == dict.fromkeys(CATEGORIES, 1)
    assert out["expected_file"] == str(tmp_path.resolve() / DRIFT_EXPECTED_FILE)
    assert sorted(json.loads(Path(out["expected_file"]).read_text()).values()) == sorted(CATEGORIES)


def test_drift_without_a_running_sandbox_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="orderflow-sandbox serve"):
        main(["--data-dir", str(tmp_path), "drift"])
