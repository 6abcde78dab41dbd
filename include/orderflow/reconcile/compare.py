"""Classify every order into exactly one drift category with pandas (first match wins).

Inputs are the extract files as frames; the only outside facts are which orders have a
provisioning run in flight and which orphan candidates Salesforce does have (both looked up by
the caller), so the whole classification is a pure function of its arguments and unit-testable
on synthetic frames. Vectorised masks over the full frames; per-row Python only for drifted rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orderflow.reconcile import NOT_DRIFT, RECENTLY_CHANGED_MINUTES, SEVERITY, Category
from orderflow.reconcile.extract import (
    PAYMETHODS_FILE,
    SF_ITEMS_FILE,
    SF_ORDERS_FILE,
    WH_ORDERS_FILE,
    WH_SERVICES_FILE,
)

log = logging.getLogger(__name__)

DEAD_ORDER_STATUSES = frozenset({"Cancelled", "Fraud"})  # not "live": a cancelled duplicate is no duplicate
DRIFT_SERVICE_STATUSES = ("Suspended", "Terminated", "Cancelled")
PAYMENT_METHOD_MISSING = "PAYMENT_METHOD_MISSING"
_WH_ACCOUNT_RE = r"^\s*#\s*(\d+)"
CLASSIFIED_COLUMNS = ["sf_order_id", "whmcs_order_id", "category", "severity", "detail", "client_id",
                      "repair_records"]


@dataclass
class Frames:
    """The four extract tables (all columns as strings, empty string for null)."""

    sf_orders: pd.DataFrame
    sf_items: pd.DataFrame
    wh_orders: pd.DataFrame
    wh_services: pd.DataFrame
    paymethods: pd.DataFrame | None = None

    def rows(self) -> dict[str, int]:
        return {"salesforce_orders": len(self.sf_orders), "salesforce_order_items": len(self.sf_items),
                "whmcs_orders": len(self.wh_orders), "whmcs_services": len(self.wh_services)}


def _read(path: Any) -> pd.DataFrame:
    with path.open("rb") as fh:
        return pd.read_csv(fh, dtype=object, keep_default_na=False, na_filter=False)


def load_frames(folder: Any) -> Frames:
    """Read the extract files of a run folder."""
    pm = folder / PAYMETHODS_FILE
    return Frames(_read(folder / SF_ORDERS_FILE), _read(folder / SF_ITEMS_FILE), _read(folder / WH_ORDERS_FILE),
                  _read(folder / WH_SERVICES_FILE), _read(pm) if pm.exists() else None)


def client_ids(sf_orders: pd.DataFrame) -> pd.Series:
    """WHMCS client id parsed from ``Account.WH_Account__c`` (``#1234 - Name``); NaN when unparsable."""
    return pd.to_numeric(sf_orders["Account.WH_Account__c"].str.extract(_WH_ACCOUNT_RE, expand=False),
                         errors="coerce")


def payment_recovery_clients(sf_orders: pd.DataFrame) -> list[int]:
    """Clients whose orders failed for want of a pay method: the only pay-method lookups needed."""
    failed = sf_orders[(sf_orders["Activation_Status__c"] == "Failed")
                       & (sf_orders["Activation_Error_Code__c"] == PAYMENT_METHOD_MISSING)]
    return sorted({int(c) for c in client_ids(failed).dropna()})


def _marks(wh_orders: pd.DataFrame) -> pd.DataFrame:
    """One row per (WHMCS order, Salesforce id its notes carry)."""
    marked = wh_orders[wh_orders["sf_order_ids"] != ""][["id", "status", "date", "sf_order_ids"]]
    marks = marked.assign(sf=marked["sf_order_ids"].str.split()).explode("sf")
    # object, not pandas' Arrow-backed str: isin on those is several times slower
    return marks[["id", "status", "date", "sf"]].astype(object)


def orphan_candidates(frames: Frames, since: dt.datetime | None = None, only: str | None = None) -> set[str]:
    """Salesforce ids carried by WHMCS orders but absent from the extracted orders.

    With a partial scope the caller must confirm these against Salesforce (they may simply be
    outside the window); ``since`` keeps WHMCS orders dated in the window, ``only`` one order id.
    """
    marks = _marks(frames.wh_orders)
    marks = marks[~marks["sf"].isin(frames.sf_orders["Id"])]
    if only is not None:
        marks = marks[marks["sf"] == only]
    if since is not None and len(marks):
        dates = pd.to_datetime(marks["date"], errors="coerce", utc=True)
        marks = marks[dates.isna() | (dates >= pd.Timestamp(since).tz_convert("UTC").normalize())]
    return set(marks["sf"])


def in_flight_candidates(frames: Frames, now: dt.datetime, stuck_minutes: int) -> pd.DataFrame:
    """Orders worth asking Airflow about: every Activating order and every order that would drift.

    A provisioning run matters only where it would change the verdict, so IN_SYNC orders that are
    not Activating are not looked up (that keeps the run-id lookups bounded by the drift).
    """
    prelim = classify(frames, set(), now, stuck_minutes, orphans=set(), recent_minutes=0)
    ids = set(prelim.loc[~prelim["category"].isin([Category.IN_SYNC, Category.DUPLICATE_IN_WHMCS,
                                                    Category.MISSING_IN_WHMCS, Category.ORPHAN_IN_WHMCS]),
                         "sf_order_id"])
    o = frames.sf_orders
    ids |= set(o.loc[o["Activation_Status__c"] == "Activating", "Id"])
    return o.loc[o["Id"].isin(ids), ["Id", "LastModifiedDate"]].reset_index(drop=True)


def classify(
    frames: Frames,
    in_flight: Iterable[str],
    now: dt.datetime,
    stuck_minutes: int,
    orphans: Iterable[str] | None = None,
    recent_minutes: int = RECENTLY_CHANGED_MINUTES,
) -> pd.DataFrame:
    """One row per Salesforce order and per orphan WHMCS order: ``CLASSIFIED_COLUMNS``.

    ``in_flight``: order ids with a ``provision_order`` run queued or running. ``orphans``: the
    Salesforce ids that are confirmed absent (None = every id missing from ``sf_orders``, right
    for a full extraction). ``recent_minutes``: an order modified this recently is IN_FLIGHT.
    """
    o = frames.sf_orders.reset_index(drop=True)
    wo = frames.wh_orders
    now_ts = pd.Timestamp(now).tz_convert("UTC")
    sf_ids = o["Id"]

    marks = _marks(wo)
    live = marks[~marks["status"].isin(DEAD_ORDER_STATUSES)]
    n_live = live.groupby("sf").size()
    first_live = live.drop_duplicates("sf").set_index("sf")["id"]
    status_by_wh = pd.Series(wo["status"].to_numpy(), index=wo["id"].to_numpy())
    status_by_wh = status_by_wh[~status_by_wh.index.duplicated()]

    n = sf_ids.map(n_live).fillna(0).astype(int).to_numpy()
    named = o["WHMCS_Order_ID__c"]
    named_known = named.isin(status_by_wh.index).to_numpy()
    eff = np.where(n == 1, sf_ids.map(first_live).fillna("").to_numpy(),
                   np.where(named_known, named.to_numpy(), ""))
    eff_s = pd.Series(eff, index=o.index)
    wh_status = eff_s.map(status_by_wh).fillna("").to_numpy()

    items = frames.sf_items
    missing_sid = (items["WHMCS_Service_ID__c"] == "").groupby(items["OrderId"]).sum()
    items_missing = sf_ids.map(missing_sid).fillna(0).to_numpy() > 0
    services = frames.wh_services
    bad_services = services[services["status"].isin(DRIFT_SERVICE_STATUSES)]
    bad_orders = set(bad_services["orderid"])

    modified = pd.to_datetime(o["LastModifiedDate"], utc=True, errors="coerce", format="ISO8601")
    act = o["Activation_Status__c"].to_numpy()
    code = o["Activation_Error_Code__c"].to_numpy()
    no_wh = eff == ""
    cid = client_ids(o)
    if frames.paymethods is not None and len(frames.paymethods):
        pm = frames.paymethods
        with_pm = set(pd.to_numeric(pm.loc[pd.to_numeric(pm["paymethods"], errors="coerce") > 0, "clientid"]))
    else:
        with_pm = set()
    has_pm = cid.isin(with_pm).to_numpy()

    dup = n > 1
    missing = (named.to_numpy() != "") & ~named_known & (n == 0)
    recent = (modified >= now_ts - pd.Timedelta(minutes=recent_minutes)).to_numpy() if recent_minutes > 0 \
        else np.zeros(len(o), dtype=bool)
    flying = sf_ids.isin(set(in_flight)).to_numpy() | recent
    behind = (wh_status == "Active") & ((act != "Activated") | (named.to_numpy() != eff) | items_missing)
    stale = (modified < now_ts - pd.Timedelta(minutes=stuck_minutes)).to_numpy()
    stuck = (act == "Activating") & stale & (no_wh | (wh_status == "Pending"))
    recovered = (act == "Failed") & (code == PAYMENT_METHOD_MISSING) & no_wh & has_pm
    pending = (act == "Activated") & (wh_status == "Pending")
    sdrift = (act == "Activated") & eff_s.isin(bad_orders).to_numpy()
    order = [Category.DUPLICATE_IN_WHMCS, Category.MISSING_IN_WHMCS, Category.IN_FLIGHT, Category.SF_BEHIND,
             Category.STUCK_ACTIVATING, Category.PAYMENT_RECOVERED, Category.WHMCS_PENDING, Category.SERVICE_DRIFT]
    category = np.select([dup, missing, flying, behind, stuck, recovered, pending, sdrift],
                         [c.value for c in order], default=Category.IN_SYNC.value)

    out = pd.DataFrame({
        "sf_order_id": sf_ids.to_numpy(),
        "whmcs_order_id": np.where(eff != "", eff, named.to_numpy()),
        "category": category,
        "client_id": cid.astype("Int64").astype(str).replace("<NA>", "").to_numpy(),
        "detail": "",
        "repair_records": "",
    })
    drifted = out.index[out["category"] != Category.IN_SYNC.value]
    if len(drifted):
        _details(out, drifted, o, live, wh_status, bad_services, items, services, act, code, modified)

    # WHMCS orders that carry an id Salesforce does not have
    unknown = marks[~marks["sf"].isin(sf_ids)]
    if orphans is not None:
        unknown = unknown[unknown["sf"].isin(set(orphans))]
    unknown = unknown.drop_duplicates("id")
    if len(unknown):
        out = pd.concat([out, pd.DataFrame({
            "sf_order_id": unknown["sf"].to_numpy(), "whmcs_order_id": unknown["id"].to_numpy(),
            "category": Category.ORPHAN_IN_WHMCS.value, "client_id": "",
            "detail": [f"WHMCS order {i} ({s}) carries sfOrderId={sf}, which Salesforce does not have"
                       for i, s, sf in zip(unknown["id"], unknown["status"], unknown["sf"], strict=True)],
            "repair_records": "",
        })], ignore_index=True)
    out["severity"] = out["category"].map({c.value: s for c, s in SEVERITY.items()})
    return out[CLASSIFIED_COLUMNS]


def _details(out: pd.DataFrame, rows: pd.Index, o: pd.DataFrame, live: pd.DataFrame, wh_status: np.ndarray,
             bad_services: pd.DataFrame, items: pd.DataFrame, services: pd.DataFrame, act: np.ndarray,
             code: np.ndarray, modified: pd.Series) -> None:
    """Human-readable ``detail`` and, for SF_BEHIND, the Salesforce records the repair would write."""
    cats = out["category"].to_numpy()
    ids = set(out.loc[rows, "sf_order_id"])
    live_by_sf = live[live["sf"].isin(ids)].groupby("sf")["id"].apply(lambda s: sorted(s, key=int))
    behind_rows = rows[cats[rows] == Category.SF_BEHIND.value]
    behind_ids = set(out.loc[behind_rows, "sf_order_id"])
    behind_wh = set(out.loc[behind_rows, "whmcs_order_id"])
    items_by = (items[items["OrderId"].isin(behind_ids)].sort_values("Id").groupby("OrderId")
                .apply(lambda g: list(zip(g["Id"], g["WHMCS_Service_ID__c"], strict=True)), include_groups=False))
    svc = services[services["orderid"].isin(behind_wh)].copy()
    svc["n"] = pd.to_numeric(svc["id"], errors="coerce")
    services_by = svc.sort_values("n").groupby("orderid")["id"].apply(list)
    bad_by = bad_services[bad_services["orderid"].isin(set(out.loc[rows, "whmcs_order_id"]))].groupby("orderid").apply(
        lambda g: ", ".join(f"{i} {s}" for i, s in zip(g["id"], g["status"], strict=True)), include_groups=False)
    for r in rows:
        sf_id, wh_id, cat = out.at[r, "sf_order_id"], out.at[r, "whmcs_order_id"], cats[r]
        named = o.at[r, "WHMCS_Order_ID__c"]
        if cat == Category.DUPLICATE_IN_WHMCS:
            detail = f"{len(live_by_sf.get(sf_id, []))} live WHMCS orders carry the marker: " \
                     f"{', '.join(live_by_sf.get(sf_id, []))}"
        elif cat == Category.MISSING_IN_WHMCS:
            detail = f"Salesforce names WHMCS order {named}; WHMCS does not have it and no order carries the marker"
        elif cat == Category.IN_FLIGHT:
            detail = f"provisioning in flight or changed recently (Activation_Status__c={act[r] or 'empty'})"
        elif cat == Category.SF_BEHIND:
            pairs = items_by.get(sf_id, [])
            svc_ids = services_by.get(wh_id, [])
            detail = f"WHMCS order {wh_id} is Active; Salesforce has Activation_Status__c={act[r] or 'empty'}, " \
                     f"WHMCS_Order_ID__c={named or 'empty'}, {sum(1 for _, s in pairs if not s)} item(s) without service id"
            if len(pairs) == len(svc_ids) and pairs:
                records = [{"attributes": {"type": "Order"}, "id": sf_id, "Activation_Status__c": "Activated",
                            "WHMCS_Order_ID__c": wh_id, "Activation_Error_Code__c": None,
                            "Activation_Error_Message__c": None}]
                records += [{"attributes": {"type": "OrderItem"}, "id": item_id, "WHMCS_Service_ID__c": service_id}
                            for (item_id, _), service_id in zip(pairs, svc_ids, strict=True)]
                out.at[r, "repair_records"] = json.dumps(records, separators=(",", ":"))
            else:
                detail += f"; cannot map {len(svc_ids)} service(s) to {len(pairs)} item(s): not repaired"
        elif cat == Category.STUCK_ACTIVATING:
            since = modified.iloc[r]
            detail = f"Activating since {since:%Y-%m-%d %H:%M} UTC" + (
                f"; WHMCS order {wh_id} still {wh_status[r]}" if wh_id else "; no WHMCS order")
        elif cat == Category.PAYMENT_RECOVERED:
            detail = f"Failed with {code[r]}; WHMCS client {out.at[r, 'client_id']} now has a pay method"
        elif cat == Category.WHMCS_PENDING:
            detail = f"Salesforce Activated; WHMCS order {wh_id} still Pending"
        elif cat == Category.SERVICE_DRIFT:
            detail = f"Salesforce Activated; WHMCS service(s) {bad_by.get(wh_id, '')}"
        else:
            detail = ""
        out.at[r, "detail"] = re.sub(r"\s+", " ", detail).strip()


@dataclass(frozen=True)
class Counts:
    """Counts per category (every category present) and the drift share the brake looks at."""

    per_category: dict[str, int]
    compared: int
    drifted: int

    @property
    def drift_percent(self) -> float:
        return round(100.0 * self.drifted / self.compared, 3) if self.compared else 0.0

    @classmethod
    def of(cls, classified: pd.DataFrame) -> Counts:
        counts = classified["category"].value_counts()
        per = {c.value: int(counts.get(c.value, 0)) for c in Category}
        drifted = sum(v for k, v in per.items() if Category(k) not in NOT_DRIFT)
        return cls(per, int(len(classified)), drifted)


def read_classified(path: Any) -> pd.DataFrame:
    with path.open("rb") as fh:
        return pd.read_csv(fh, dtype=object, keep_default_na=False, na_filter=False)


def write_classified(classified: pd.DataFrame, path: Any) -> None:
    """The non-IN_SYNC rows (what repair and the report need); IN_SYNC rows are only counted."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        classified[classified["category"] != Category.IN_SYNC.value].to_csv(fh, index=False)
