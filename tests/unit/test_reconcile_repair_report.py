"""Repair planning, brakes and params, and the report renderings, without Airflow or network.

The Salesforce/WHMCS doubles record calls only to prove what is (not) sent; the behaviour against
the real emulators is covered by tests/dags/test_reconcile_orders.py.
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import pandas as pd
import pytest

from orderflow.reconcile import Category
from orderflow.reconcile.compare import CLASSIFIED_COLUMNS, Counts
from orderflow.reconcile.repair import (
    ReconcileParams,
    check_brake,
    provision_run_id,
    provision_run_spec,
    repair,
)
from orderflow.reconcile.report import DriftRow, Report, Summary, drift_rows, summary_table, write_report
from orderflow.salesforce.records import SaveResult


def oid(n: int) -> str:
    return f"801{n:012d}AAA"


def classified(rows: list[tuple[str, str, str]], n_in_sync: int = 200) -> pd.DataFrame:
    """rows: (sf id, whmcs id, category); SF_BEHIND rows get a write-back plan."""
    out = []
    for sf_id, wh_id, cat in rows:
        records = ""
        if cat == "SF_BEHIND":
            records = json.dumps([{"attributes": {"type": "Order"}, "id": sf_id, "Activation_Status__c": "Activated",
                                   "WHMCS_Order_ID__c": wh_id},
                                  {"attributes": {"type": "OrderItem"}, "id": "802" + sf_id[3:],
                                   "WHMCS_Service_ID__c": "9" + wh_id}])
        out.append({"sf_order_id": sf_id, "whmcs_order_id": wh_id, "category": cat, "severity": "medium",
                    "detail": "", "client_id": "5", "repair_records": records})
    out += [{"sf_order_id": oid(9000 + i), "whmcs_order_id": str(9000 + i), "category": "IN_SYNC",
             "severity": "none", "detail": "", "client_id": "5", "repair_records": ""} for i in range(n_in_sync)]
    return pd.DataFrame(out, columns=CLASSIFIED_COLUMNS)


class FakeSalesforce:
    def __init__(self, fail_ids: set[str] = frozenset()) -> None:
        self.fail_ids = fail_ids
        self.calls: list[list[dict]] = []
        self.api_calls: Counter[str] = Counter()

    def update_collection(self, records, all_or_none=False, sobject=None):
        for start in range(0, len(records), 200):
            self.calls.append(records[start:start + 200])
            self.api_calls["collections"] += 1
        return [SaveResult(r["id"], r["id"] not in self.fail_ids,
                           [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}] if r["id"] in self.fail_ids else [])
                for r in records]


class FakeWhmcs:
    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.total_calls = 0

    def accept_order(self, order_id):
        self.total_calls += 1
        self.accepted.append(order_id)


DRIFT = [(oid(1), "101", "SF_BEHIND"), (oid(2), "", "STUCK_ACTIVATING"), (oid(3), "", "PAYMENT_RECOVERED"),
         (oid(4), "104", "WHMCS_PENDING"), (oid(5), "105", "DUPLICATE_IN_WHMCS"), (oid(6), "106", "SERVICE_DRIFT")]


def run(df, params: ReconcileParams, sf=None, wh=None):
    brake = check_brake(df, Counts.of(df), params)
    return brake, repair(df, brake, params, "manual__2026-12-03T02:00:00+00:00", sf=sf, whmcs=wh)


def test_repairs_follow_the_table():
    sf, wh = FakeSalesforce(), FakeWhmcs()
    brake, out = run(classified(DRIFT), ReconcileParams(), sf, wh)
    assert not brake.tripped
    assert out.repaired == {oid(1): "yes", oid(2): "run_started", oid(3): "run_started"}
    sent = [r for call in sf.calls for r in call]
    assert {r["id"] for r in sent if r["attributes"]["type"] == "Order"} == {oid(1), oid(3)}
    reset = next(r for r in sent if r["id"] == oid(3))
    assert reset["Activation_Status__c"] == "Activating" and reset["Activation_Error_Code__c"] is None
    assert [s["conf"] for s in out.specs] == [{"order_id": oid(2), "source": "reconcile"},
                                               {"order_id": oid(3), "source": "reconcile"}]
    assert wh.accepted == []  # WHMCS_PENDING only reported without accept_pending


def test_accept_pending_calls_accept_order():
    wh = FakeWhmcs()
    _, out = run(classified(DRIFT), ReconcileParams(accept_pending=True), FakeSalesforce(), wh)
    assert wh.accepted == ["104"] and out.repaired[oid(4)] == "yes"


def test_salesforce_writes_go_in_200_record_collections_and_failures_are_reported():
    rows = [(oid(i), str(1000 + i), "SF_BEHIND") for i in range(1, 151)]  # 300 records
    sf = FakeSalesforce(fail_ids={oid(7)})
    _, out = run(classified(rows, n_in_sync=5000), ReconcileParams(), sf)
    assert [len(c) for c in sf.calls] == [200, 100]
    assert out.repaired[oid(7)] == "failed" and "UNABLE_TO_LOCK_ROW" in out.notes[oid(7)]
    assert out.failed == 1 and out.applied == 149


@pytest.mark.parametrize("params,reason", [(ReconcileParams(max_repairs=2), "max_repairs"),
                                           (ReconcileParams(max_drift_percent=1), "max_drift_percent")])
def test_a_tripped_brake_repairs_nothing(params, reason):
    sf, wh = FakeSalesforce(), FakeWhmcs()
    brake, out = run(classified(DRIFT, n_in_sync=294), params, sf, wh)
    assert brake.tripped and reason in brake.reason
    assert sf.calls == [] and out.specs == [] and wh.accepted == []
    assert set(out.repaired.values()) == {"skipped"}


def test_dry_run_plans_and_sends_nothing():
    sf = FakeSalesforce()
    _, out = run(classified(DRIFT), ReconcileParams(dry_run=True), sf)
    assert sf.calls == [] and out.specs == []
    assert set(out.repaired.values()) == {"dry_run"}


def test_run_ids_are_deterministic_per_order_and_reconciliation():
    a = provision_run_id(oid(1), "scheduled__2026-12-03T02:00:00+00:00")
    assert a == provision_run_id(oid(1), "scheduled__2026-12-03T02:00:00+00:00")
    assert a != provision_run_id(oid(1), "scheduled__2026-12-04T02:00:00+00:00")
    assert a.startswith(f"order__{oid(1)}__reconcile__")
    assert provision_run_spec(oid(1), "x")["trigger_run_id"] == provision_run_id(oid(1), "x")


@pytest.mark.parametrize("params,field", [
    ({"order_id": "001000000000001AAA"}, "order_id"), ({"lookback_days": 0}, "lookback_days"),
    ({"max_repairs": -1}, "max_repairs"), ({"max_drift_percent": 120}, "max_drift_percent"),
    ({"dry_run": "no"}, "dry_run"), ({"stuck_minutes": 0}, "stuck_minutes"), ({"accept_pending": 1}, "accept_pending"),
])
def test_bad_params_name_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        ReconcileParams.from_params(params)


def test_params_defaults():
    p = ReconcileParams.from_params({})
    assert (p.dry_run, p.order_id, p.lookback_days, p.max_repairs, p.max_drift_percent, p.stuck_minutes,
            p.accept_pending) == (False, None, None, 500, 5.0, 60, False)


def summary(**kw) -> Summary:
    base = dict(run_id="manual__x", generated_at="2026-12-03T02:00:00+00:00", scope={}, params={},
                counts={c.value: 0 for c in Category} | {"IN_SYNC": 98, "SF_BEHIND": 1, "DUPLICATE_IN_WHMCS": 1},
                compared=100, drift_percent=2.0, repairs={"applied": 1, "skipped": 0, "failed": 0, "runs_to_start": 0},
                brake={"tripped": False, "reason": "", "max_drift_percent": 5.0}, duration_s={"compare": 0.5},
                api_calls={"salesforce": 7, "whmcs": 3}, rows={"salesforce_orders": 100})
    return Summary(**{**base, **kw})


def test_report_files_have_the_expected_rows(tmp_path):
    df = classified([(oid(1), "101", "SF_BEHIND"), (oid(5), "<b>105</b>", "DUPLICATE_IN_WHMCS")], n_in_sync=3)
    df.loc[1, "severity"] = "high"
    rows = drift_rows(df, {oid(1): "yes"})
    paths = write_report(Report(summary(), rows), tmp_path)
    with open(tmp_path / "drift.csv", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == ["sf_order_id", "whmcs_order_id", "category", "severity", "detail", "repaired"]
    assert [(r["sf_order_id"], r["category"], r["repaired"]) for r in got] == [
        (oid(5), "DUPLICATE_IN_WHMCS", "no"), (oid(1), "SF_BEHIND", "yes")]  # high severity first; no IN_SYNC rows
    data = json.loads((tmp_path / "summary.json").read_text())
    assert set(data["counts"]) == {c.value for c in Category}
    html = (tmp_path / "report.html").read_text()
    assert "&lt;b&gt;105&lt;/b&gt;" in html and "<b>105</b>" not in html  # escaped by the template
    assert html.count('class="bar ') == len(Category)
    assert set(paths) == {"drift.csv", "summary.json", "report.html"}


def test_summary_table_lists_every_category_and_the_brake():
    text = summary_table(summary(brake={"tripped": True, "reason": "too many", "max_drift_percent": 5}))
    for c in Category:
        assert c.value in text
    assert "TRIPPED: too many" in text


def test_drift_row_is_frozen():
    row = DriftRow("a", "b", "c", "d", "e", "f")
    with pytest.raises(AttributeError):
        row.category = "x"  # type: ignore[misc]
