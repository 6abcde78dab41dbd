"""Classification on synthetic frames: every category, the precedence, orphans and the counts.

The frames have exactly the columns the extract files have, so these tests pin the contract
between extract and compare as well as the category rules of the issue's table.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from orderflow.reconcile import Category
from orderflow.reconcile.compare import Counts, Frames, classify, in_flight_candidates, payment_recovery_clients

NOW = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
OLD = "2026-12-01T10:00:00.000Z"
RECENT = (NOW - dt.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def oid(n: int) -> str:
    return f"801{n:012d}AAA"


class World:
    """A tiny two-system world built order by order."""

    def __init__(self) -> None:
        self.orders: list[dict] = []
        self.items: list[dict] = []
        self.wh: list[dict] = []
        self.services: list[dict] = []
        self.pm: list[dict] = []
        self._wh = 100
        self._svc = 1000
        self._item = 0

    def sf(self, n: int, status: str = "Activated", wh_id: str = "", code: str = "", client: int = 5,
           modified: str = OLD, items: int = 2, item_sids: list[str] | None = None) -> str:
        order_id = oid(n)
        self.orders.append({"Id": order_id, "Status": "Activated" if status == "Activated" else "Approved",
                            "Activation_Status__c": status, "Activation_Error_Code__c": code,
                            "WHMCS_Order_ID__c": wh_id, "AccountId": "001000000000001AAA",
                            "Account.WH_Account__c": f"#{client} - Someone", "CreatedDate": OLD,
                            "LastModifiedDate": modified})
        for k in range(items):
            self._item += 1
            sid = item_sids[k] if item_sids is not None else ""
            self.items.append({"Id": f"802{self._item:012d}AAA", "OrderId": order_id, "WHMCS_Service_ID__c": sid})
        return order_id

    def whmcs(self, sf_id: str | None, status: str = "Active", services: int = 2, svc_status: str = "Active",
              client: int = 5) -> tuple[str, list[str]]:
        self._wh += 1
        wh_id = str(self._wh)
        self.wh.append({"id": wh_id, "userid": str(client), "status": status, "date": "2026-11-30 10:00:00",
                        "sf_order_ids": sf_id or ""})
        sids = []
        for _ in range(services):
            self._svc += 1
            sids.append(str(self._svc))
            self.services.append({"id": str(self._svc), "orderid": wh_id, "clientid": str(client),
                                  "status": svc_status})
        return wh_id, sids

    def synced(self, n: int) -> str:
        """An order provisioned cleanly: both sides agree."""
        wh_id, sids = self.whmcs(oid(n))
        return self.sf(n, "Activated", wh_id, item_sids=sids)

    def recovered(self, n: int, client: int = 77) -> str:
        """Failed for want of a pay method, and the client has one now."""
        self.pm.append({"clientid": str(client), "paymethods": "1"})
        return self.sf(n, "Failed", code="PAYMENT_METHOD_MISSING", client=client)

    def provisioned(self, n: int, status: str = "Active", svc_status: str = "Active") -> tuple[str, str]:
        """Salesforce Activated with the ids of a WHMCS order in ``status`` (services ``svc_status``)."""
        wh_id, sids = self.whmcs(oid(n), status=status, svc_status=svc_status)
        return self.sf(n, "Activated", wh_id, item_sids=sids), wh_id

    def frames(self) -> Frames:
        def df(rows, cols):
            return pd.DataFrame(rows, columns=cols).astype(str)

        return Frames(
            df(self.orders, ["Id", "Status", "Activation_Status__c", "Activation_Error_Code__c", "WHMCS_Order_ID__c",
                             "AccountId", "Account.WH_Account__c", "CreatedDate", "LastModifiedDate"]),
            df(self.items, ["Id", "OrderId", "WHMCS_Service_ID__c"]),
            df(self.wh, ["id", "userid", "status", "date", "sf_order_ids"]),
            df(self.services, ["id", "orderid", "clientid", "status"]),
            df(self.pm, ["clientid", "paymethods"]),
        )


def categories(world: World, in_flight=(), stuck_minutes: int = 60, **kw) -> dict[str, str]:
    out = classify(world.frames(), set(in_flight), NOW, stuck_minutes, **kw)
    keyed = {}
    for row in out.itertuples():
        key = row.sf_order_id if row.category != Category.ORPHAN_IN_WHMCS else f"whmcs:{row.whmcs_order_id}"
        assert key not in keyed, f"{key} classified twice"
        keyed[key] = row.category
    return keyed


def test_every_category_from_its_own_situation():
    w = World()
    synced = w.synced(1)
    dup = w.sf(2, "Activated", "")
    w.whmcs(dup)
    w.whmcs(dup)
    missing = w.sf(3, "Activated", "999999")
    flying = w.sf(4, "Activating", modified=OLD)
    behind_wh, behind_sids = w.whmcs(oid(5))
    behind = w.sf(5, "Activating", "")
    stuck = w.sf(6, "Activating", modified=OLD)
    recovered = w.recovered(7)
    pending, _ = w.provisioned(8, status="Pending")
    drift, _ = w.provisioned(9, svc_status="Suspended")
    orphan_wh, _ = w.whmcs(oid(99))
    never = w.sf(10, "", "")  # never sent to provisioning
    failed = w.sf(11, "Failed", code="PRODUCT_MAPPING_MISSING")  # failed, no WHMCS order

    got = categories(w, in_flight={flying})
    assert got == {
        synced: "IN_SYNC", dup: "DUPLICATE_IN_WHMCS", missing: "MISSING_IN_WHMCS", flying: "IN_FLIGHT",
        behind: "SF_BEHIND", stuck: "STUCK_ACTIVATING", recovered: "PAYMENT_RECOVERED", pending: "WHMCS_PENDING",
        drift: "SERVICE_DRIFT", f"whmcs:{orphan_wh}": "ORPHAN_IN_WHMCS", never: "IN_SYNC", failed: "IN_SYNC",
    }


def test_sf_behind_plans_the_write_back_with_service_ids_in_item_order():
    w = World()
    wh_id, sids = w.whmcs(oid(1), services=3)
    order_id = w.sf(1, "Activating", "", items=3)
    out = classify(w.frames(), set(), NOW, 60)
    row = out[out.sf_order_id == order_id].iloc[0]
    assert row.category == "SF_BEHIND" and row.whmcs_order_id == wh_id
    import json

    records = json.loads(row.repair_records)
    assert records[0] == {"attributes": {"type": "Order"}, "id": order_id, "Activation_Status__c": "Activated",
                          "WHMCS_Order_ID__c": wh_id, "Activation_Error_Code__c": None,
                          "Activation_Error_Message__c": None}
    assert [r["WHMCS_Service_ID__c"] for r in records[1:]] == sids
    assert [r["id"] for r in records[1:]] == sorted(r["id"] for r in records[1:])


def test_sf_behind_when_only_the_service_ids_are_missing():
    w = World()
    wh_id, _ = w.whmcs(oid(1))
    order_id = w.sf(1, "Activated", wh_id)  # items lack service ids
    assert categories(w)[order_id] == "SF_BEHIND"


def test_precedence_first_match_wins():
    w = World()
    # a duplicate that is also in flight and Activating: DUPLICATE wins
    dup = w.sf(1, "Activating", modified=RECENT)
    w.whmcs(dup)
    w.whmcs(dup)
    # missing and in flight: MISSING wins
    missing = w.sf(2, "Activated", "424242", modified=RECENT)
    # in flight beats SF_BEHIND
    w.whmcs(oid(3))
    flying = w.sf(3, "Activating", "")
    # SF_BEHIND beats SERVICE_DRIFT (Active WHMCS order, Salesforce lacks ids, a service suspended)
    wh4, _ = w.whmcs(oid(4), svc_status="Suspended")
    behind = w.sf(4, "Activated", "")
    # WHMCS_PENDING beats SERVICE_DRIFT
    wh5, s5 = w.whmcs(oid(5), status="Pending", svc_status="Suspended")
    pending = w.sf(5, "Activated", wh5, item_sids=s5)
    got = categories(w, in_flight={flying})
    assert got[dup] == "DUPLICATE_IN_WHMCS"
    assert got[missing] == "MISSING_IN_WHMCS"
    assert got[flying] == "IN_FLIGHT"
    assert got[behind] == "SF_BEHIND"
    assert got[pending] == "WHMCS_PENDING"


def test_recent_change_is_in_flight_and_stuck_needs_stuck_minutes():
    w = World()
    recent = w.sf(1, "Activating", modified=RECENT)
    half_hour = (NOW - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    young = w.sf(2, "Activating", modified=half_hour)
    got = categories(w)
    assert got[recent] == "IN_FLIGHT"
    assert got[young] == "IN_SYNC"  # Activating for 30 min < stuck_minutes=60: not judged stuck
    assert categories(w, stuck_minutes=20)[young] == "STUCK_ACTIVATING"
    assert categories(w, recent_minutes=0)[recent] == "IN_SYNC"


def test_cancelled_duplicate_is_no_duplicate_and_payment_not_recovered_without_pay_method():
    w = World()
    wh_id, sids = w.whmcs(oid(1))
    w.whmcs(oid(1), status="Cancelled", svc_status="Cancelled")
    synced = w.sf(1, "Activated", wh_id, item_sids=sids)
    nopm = w.sf(2, "Failed", code="PAYMENT_METHOD_MISSING", client=88)
    w.pm.append({"clientid": "88", "paymethods": "0"})
    got = categories(w)
    assert got[synced] == "IN_SYNC"
    assert got[nopm] == "IN_SYNC"
    assert payment_recovery_clients(w.frames().sf_orders) == [88]


def test_orphans_limited_to_confirmed_ids_for_partial_scopes():
    w = World()
    w.synced(1)
    orphan_wh, _ = w.whmcs(oid(50))
    assert categories(w)[f"whmcs:{orphan_wh}"] == "ORPHAN_IN_WHMCS"
    assert f"whmcs:{orphan_wh}" not in categories(w, orphans=set())


def test_counts_have_every_category_and_the_drift_share():
    w = World()
    for n in range(1, 9):
        w.synced(n)
    w.sf(20, "Activating", modified=OLD)  # stuck
    flying = w.sf(21, "Activating", modified=OLD)
    counts = Counts.of(classify(w.frames(), {flying}, NOW, 60))
    assert set(counts.per_category) == {c.value for c in Category}
    assert counts.per_category["IN_SYNC"] == 8 and counts.per_category["STUCK_ACTIVATING"] == 1
    assert counts.per_category["IN_FLIGHT"] == 1 and counts.per_category["ORPHAN_IN_WHMCS"] == 0
    assert counts.compared == 10 and counts.drifted == 1
    assert counts.drift_percent == pytest.approx(10.0)


def test_in_flight_lookup_only_for_activating_and_would_be_drift():
    w = World()
    synced = w.synced(1)
    stuck = w.sf(2, "Activating", modified=OLD)
    w.whmcs(oid(3))
    behind = w.sf(3, "Failed", "")
    cand = set(in_flight_candidates(w.frames(), NOW, 60)["Id"])
    assert cand == {stuck, behind}
    assert synced not in cand


def test_readme_runbook_lists_every_category_in_precedence_order():
    """The runbook's category table is the enum's list, in the order the first match is taken (one source)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| ([A-Z_]+) \| [^|]+ \| [^|]+ \| [^|]+ \|$", readme, flags=re.MULTILINE)
    assert rows == [c.value for c in Category]


def test_in_flight_beats_every_later_category_and_a_duplicate_beats_sf_behind():
    w = World()
    recovered = w.recovered(1)
    pending, _ = w.provisioned(2, status="Pending")
    drift, _ = w.provisioned(3, svc_status="Suspended")
    stuck = w.sf(4, "Activating", modified=OLD)
    dup_wh, _ = w.whmcs(oid(5))
    w.whmcs(oid(5))
    dup = w.sf(5, "Activating", dup_wh)  # behind on an Active order it names, but two live orders carry it
    alone = categories(w)
    assert [alone[k] for k in (recovered, pending, drift, stuck, dup)] == [
        "PAYMENT_RECOVERED", "WHMCS_PENDING", "SERVICE_DRIFT", "STUCK_ACTIVATING", "DUPLICATE_IN_WHMCS"]
    flying = categories(w, in_flight={recovered, pending, drift, stuck, dup})
    assert [flying[k] for k in (recovered, pending, drift, stuck, dup)] == ["IN_FLIGHT"] * 4 + ["DUPLICATE_IN_WHMCS"]


def test_a_live_marker_wins_over_the_id_salesforce_names():
    w = World()
    other_wh, _ = w.whmcs(None)  # an Active order that carries no marker
    marked_wh, sids = w.whmcs(oid(1))
    order_id = w.sf(1, "Activated", other_wh, item_sids=sids)
    out = classify(w.frames(), set(), NOW, 60)
    row = out[out.sf_order_id == order_id].iloc[0]
    assert (row.category, row.whmcs_order_id) == ("SF_BEHIND", marked_wh)


def test_one_whmcs_order_may_carry_several_ids_separated_by_any_whitespace():
    w = World()
    wh_id, sids = w.whmcs(f"{oid(1)} {oid(2)}\t{oid(9)}")
    first = w.sf(1, "Activated", wh_id, item_sids=sids)
    second = w.sf(2, "Activated", wh_id, item_sids=sids)
    got = categories(w)
    assert (got[first], got[second], got[f"whmcs:{wh_id}"]) == ("IN_SYNC", "IN_SYNC", "ORPHAN_IN_WHMCS")
    out = classify(w.frames(), set(), NOW, 60)
    assert out.loc[out.category == "ORPHAN_IN_WHMCS", "sf_order_id"].tolist() == [oid(9)]
    w.whmcs(f"  {oid(1)}  ")  # a second live order for the first id: surrounding blanks do not matter
    assert categories(w)[first] == "DUPLICATE_IN_WHMCS"


def test_modified_times_in_other_iso_forms_than_salesforces_are_read_too():
    w = World()
    recent = w.sf(1, "Activating", modified=(NOW - dt.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    stuck = w.sf(2, "Activating", modified="2026-12-01T10:00:00Z")
    unreadable = w.sf(3, "Activating", modified="")  # no time: neither recent nor stuck
    young = w.sf(4, "Activating", modified=(NOW - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    out = classify(w.frames(), set(), NOW, 60).set_index("sf_order_id")
    assert [out.at[k, "category"] for k in (recent, stuck, unreadable, young)] == [
        "IN_FLIGHT", "STUCK_ACTIVATING", "IN_SYNC", "IN_SYNC"]
    assert out.at[stuck, "detail"] == "Activating since 2026-12-01 10:00 UTC; no WHMCS order"


def test_client_id_is_the_number_of_the_account_field():
    w = World()
    padded = w.sf(1, "Activated", client=7)
    w.orders[-1]["Account.WH_Account__c"] = " # 007 - Someone"
    unparsable = w.sf(2, "Activated")
    w.orders[-1]["Account.WH_Account__c"] = "no id here"
    out = classify(w.frames(), set(), NOW, 60).set_index("sf_order_id")
    assert out.at[padded, "client_id"] == "7"
    assert pd.isna(out.at[unparsable, "client_id"]) or out.at[unparsable, "client_id"] == ""
