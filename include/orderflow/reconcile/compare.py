"""Classify every order into exactly one drift category with pandas (first match wins).

Inputs are the extract files as frames; the only outside facts are which orders have a
provisioning run in flight and which orphan candidates Salesforce does have (both looked up by
the caller), so the whole classification is a pure function of its arguments and unit-testable
on synthetic frames. Vectorised masks over the full frames; per-row Python only for drifted rows.

Why it is built the way it is (a nightly run compares 100,000s of orders; issue 10 asks no slower
than datacompy's PandasCompare on the same frames, see bench/compare_bench.py): columns are taken
as NumPy object arrays (hashing pandas' Arrow-backed ``str`` is several times slower), the
Salesforce ids of both sides are factorised once so per-order counts and lookups are integer
indexing, the per-string parsers (note splitting, the account regex, ISO timestamps) get a fast
path for the shape the extract files have, and the output's few-valued columns are taken from
their distinct values. The results, dtypes included, are those of the plain pandas version.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orderflow.errors import ErrorCode
from orderflow.reconcile import NOT_DRIFT, RECENTLY_CHANGED_MINUTES, SEVERITY, Category
from orderflow.reconcile.extract import (
    PAYMETHODS_FILE,
    SF_ITEMS_FILE,
    SF_ORDERS_FILE,
    WH_ORDERS_FILE,
    WH_SERVICES_FILE,
)
from orderflow.statuses import DEAD_ORDER_STATUSES, DRIFT_SERVICE_STATUSES, ActivationStatus, WhmcsOrderStatus

log = logging.getLogger(__name__)

_WH_ACCOUNT_RE = r"^\s*#\s*(\d+)"
_SF_DATETIME = "dddd-dd-ddTdd:dd:dd.dddZ"  # Salesforce's own form of LastModifiedDate (d: a digit)
_WHITESPACE = re.compile(r"\s")
CLASSIFIED_COLUMNS = ["sf_order_id", "whmcs_order_id", "category", "severity", "detail", "client_id",
                      "repair_records"]
_CATEGORIES = list(Category)
_CODE = {c: i for i, c in enumerate(_CATEGORIES)}
_CATEGORY_NAMES = np.array([c.value for c in _CATEGORIES])  # fixed-width str, as np.select over the names gave
_SEVERITY_NAMES = [SEVERITY[c] for c in _CATEGORIES]
# The masks classify tests, in the enum's (precedence) order; ORPHAN_IN_WHMCS rows come from WHMCS.
_PRECEDENCE = tuple(c for c in Category if c not in (Category.ORPHAN_IN_WHMCS, Category.IN_SYNC))


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


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as a NumPy object array: hashing and ``==`` on those are several times faster than on
    pandas' Arrow-backed ``str`` (what ``dtype=str`` reads and the tests' frames hold)."""
    return frame[column].to_numpy(dtype=object)


def _index(values: Any) -> pd.Index:
    """An object Index (a bare array would be converted to ``str`` first, at ~20x the lookup cost)."""
    return pd.Index(np.asarray(values, dtype=object), dtype=object)


def _isin(values: np.ndarray, among: Iterable[Any]) -> np.ndarray:
    """``Series.isin`` (one hash table; NaN matches NaN) on object arrays."""
    pool = among if isinstance(among, np.ndarray) else np.fromiter(among, dtype=object)
    return _index(values).isin(pool)


def _equals_any(values: np.ndarray, few: Iterable[str]) -> np.ndarray:
    """``isin`` for a handful of constants: one ``==`` pass each beats hashing every value."""
    hit = np.zeros(len(values), dtype=bool)
    for value in few:
        hit |= values == value
    return hit


def _text(distinct: Any, codes: np.ndarray) -> Any:
    """``distinct[codes]`` as pandas' ``str`` array: converting the few distinct values, not every cell."""
    return pd.array(np.asarray(distinct, dtype=object), dtype="str").take(codes)


def _take(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values[at]``, "" where ``at`` is -1 (``Series.map`` + ``fillna("")`` by position)."""
    found = at >= 0
    out = np.full(len(at), "", dtype=object)
    out[found] = values[at[found]]
    return out


def _mark_rows(wh_orders: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``wh_orders`` and the Salesforce ids their notes carry, one pair per (order, id) in order.

    What ``str.split().explode()`` gives (NaN for a blank note) at a fraction of its cost: nearly
    every WHMCS order carries exactly one id, so the usual case is one regex scan of all notes.
    """
    notes = _values(wh_orders, "sf_order_ids")
    rows = np.flatnonzero(notes != "")
    picked = notes[rows]
    if pd.api.types.infer_dtype(picked, skipna=False) == "string" and not _WHITESPACE.search("".join(picked)):
        return rows, picked  # no whitespace anywhere: each note is one id, as split() would say
    split = [s.split() if isinstance(s, str) else [] for s in picked.tolist()]
    counts = np.fromiter(map(len, split), dtype=np.intp, count=len(split))
    if (counts == 1).all():
        return rows, np.fromiter((ids[0] for ids in split), dtype=object, count=len(split))
    owners = np.repeat(rows, np.maximum(counts, 1))
    flat = itertools.chain.from_iterable(ids or [np.nan] for ids in split)
    return owners, np.fromiter(flat, dtype=object, count=len(owners))


def _marks(wh_orders: pd.DataFrame) -> pd.DataFrame:
    """One row per (WHMCS order, Salesforce id its notes carry): ``id status date sf``, object columns."""
    rows, sf = _mark_rows(wh_orders)
    picked = wh_orders.iloc[rows]
    return pd.DataFrame({"id": _values(picked, "id"), "status": _values(picked, "status"),
                         "date": _values(picked, "date"), "sf": sf}, index=picked.index, dtype=object)


def _client_parts(accounts: np.ndarray) -> tuple[np.ndarray, pd.Series]:
    """Codes into the distinct ``WH_Account__c`` strings and each one's client id (NaN when unparsable).

    Many orders share an account, so the regex runs once per account; code -1 (a NaN account)
    reads the NaN appended last.
    """
    codes, accounts_u = pd.factorize(accounts)
    rx = re.compile(_WH_ACCOUNT_RE)
    digits = [m.group(1) if isinstance(a, str) and (m := rx.search(a)) else np.nan for a in accounts_u]
    if (codes < 0).any():
        digits.append(np.nan)
    return codes, pd.to_numeric(pd.Series(digits, dtype=object), errors="coerce")


def _client_text(per_account: pd.Series) -> np.ndarray:
    """Client ids as text; missing (not "") where unparsable, as ``astype("Int64").astype(str)`` gives."""
    known = per_account.notna().to_numpy()
    text = np.full(len(per_account), np.nan, dtype=object)
    text[known] = per_account.to_numpy()[known].astype(np.int64).astype(str).astype(object)
    return text


def client_ids(sf_orders: pd.DataFrame) -> pd.Series:
    """WHMCS client id parsed from ``Account.WH_Account__c`` (``#1234 - Name``); NaN when unparsable."""
    codes, per_account = _client_parts(_values(sf_orders, "Account.WH_Account__c"))
    return pd.Series(per_account.to_numpy()[codes], index=sf_orders.index)


def payment_recovery_clients(sf_orders: pd.DataFrame) -> list[int]:
    """Clients whose orders failed for want of a pay method: the only pay-method lookups needed."""
    failed = sf_orders[(sf_orders["Activation_Status__c"] == ActivationStatus.FAILED)
                       & (sf_orders["Activation_Error_Code__c"] == ErrorCode.PAYMENT_METHOD_MISSING)]
    return sorted({int(c) for c in client_ids(failed).dropna()})


def _salesforce_times(values: np.ndarray) -> np.ndarray | None:
    """``datetime64[us]`` (UTC) of values all in Salesforce's ``2026-12-03T02:00:00.000Z`` form, vectorised
    over their bytes; None as soon as one value is not exactly that form or not a real time."""
    if not len(values) or pd.api.types.infer_dtype(values, skipna=False) != "string":
        return None
    try:
        text = values.astype("S")  # ASCII bytes, as wide as the longest value
    except UnicodeEncodeError:
        return None
    if text.dtype.itemsize != len(_SF_DATETIME):
        return None
    raw = text.view(np.uint8).reshape(len(text), len(_SF_DATETIME))
    if not all((raw[:, i] == ord(ch)).all() for i, ch in enumerate(_SF_DATETIME) if ch != "d"):
        return None
    ok = True

    def number(first: int, width: int) -> np.ndarray:
        nonlocal ok
        out = np.zeros(len(raw), dtype=np.int64)
        for i in range(first, first + width):
            digit = raw[:, i] - np.uint8(48)  # wraps below "0", so one test covers both sides
            ok = ok and bool((digit <= 9).all())
            out = out * 10 + digit
        return out

    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    hour, minute, second, milli = number(11, 2), number(14, 2), number(17, 2), number(20, 3)
    if not ok or ((year < 1900) | (year > 2999) | (month < 1) | (month > 12) | (hour > 23) | (minute > 59)
                  | (second > 59)).any():
        return None  # odd years are left to pandas' own rules
    months = (year - 1970) * 12 + month - 1
    first_day = months.astype("datetime64[M]").astype("datetime64[D]")
    month_days = ((months + 1).astype("datetime64[M]").astype("datetime64[D]") - first_day).astype(np.int64)
    if ((day < 1) | (day > month_days)).any():
        return None
    micros = (((day - 1) * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + milli * 1_000
    return first_day.astype("datetime64[us]") + micros.astype("timedelta64[us]")


def _timestamps(values: pd.Series) -> pd.Series:
    """UTC times of ISO 8601 strings, exactly as ``format="ISO8601"`` parses them (``datetime64[us, UTC]``
    for Salesforce's millisecond form); that form without pandas' per-string parser, several times faster."""
    fast = _salesforce_times(values.to_numpy(dtype=object))
    if fast is None:
        return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return pd.Series(fast, index=values.index, name=values.name).dt.tz_localize("UTC")


def orphan_candidates(frames: Frames, since: dt.datetime | None = None, only: str | None = None) -> set[str]:
    """Salesforce ids carried by WHMCS orders but absent from the extracted orders.

    With a partial scope the caller must confirm these against Salesforce (they may simply be
    outside the window); ``since`` keeps WHMCS orders dated in the window, ``only`` one order id.
    """
    marks = _marks(frames.wh_orders)
    marks = marks[~_isin(marks["sf"].to_numpy(), _values(frames.sf_orders, "Id"))]
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
    ids |= set(o.loc[o["Activation_Status__c"] == ActivationStatus.ACTIVATING, "Id"])
    return o.loc[o["Id"].isin(ids), ["Id", "LastModifiedDate"]].reset_index(drop=True)


@dataclass
class _Orders:
    """Per-order arrays (positions as in ``sf_orders``) and the WHMCS marks that ``_details`` words."""

    sf_id: np.ndarray
    wh_id: np.ndarray
    named: np.ndarray
    act: np.ndarray
    code: np.ndarray
    wh_status: np.ndarray
    client: np.ndarray
    category: np.ndarray  # codes into _CATEGORIES
    modified: pd.Series
    mark_sf: np.ndarray
    mark_id: np.ndarray
    live: np.ndarray


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
    now_ts = pd.Timestamp(now).tz_convert("UTC")
    sf_ids, named = _values(o, "Id"), _values(o, "WHMCS_Order_ID__c")
    act, code = _values(o, "Activation_Status__c"), _values(o, "Activation_Error_Code__c")

    wo = frames.wh_orders
    wo_ids, wo_status = _values(wo, "id"), _values(wo, "status")
    owners, mark_sf = _mark_rows(wo)
    mark_id, mark_status = wo_ids[owners], wo_status[owners]
    live = ~_equals_any(mark_status, DEAD_ORDER_STATUSES)

    # One hash pass over the Salesforce ids of both sides; per-order counts and lookups are integer indexing.
    keys, uniques = pd.factorize(np.concatenate([sf_ids, mark_sf]), use_na_sentinel=False)
    sf_key, mark_key = keys[:len(sf_ids)], keys[len(sf_ids):]
    n = np.bincount(mark_key[live], minlength=len(uniques))[sf_key]
    first_key, first_at = np.unique(mark_key[live], return_index=True)
    first_row = owners[live][first_at]  # the WHMCS row of each id's first live mark

    # The WHMCS order each Salesforce order is compared with: its one live mark, else the id it names.
    wh_index, wh_statuses, row_at = _index(wo_ids), wo_status, np.arange(len(wo_ids))
    if not wh_index.is_unique:  # the first row of an id wins
        keep = ~wh_index.duplicated()
        wh_index, wh_statuses = wh_index[keep], wo_status[keep]
        row_at = wh_index.get_indexer(_index(wo_ids))
    named_at = wh_index.get_indexer(_index(named))
    named_known = named_at >= 0
    first_live = np.full(len(uniques), "", dtype=object)
    first_live[first_key] = wo_ids[first_row]
    first_live_at = np.full(len(uniques), -1)
    first_live_at[first_key] = row_at[first_row]
    eff = np.where(n == 1, first_live[sf_key], np.where(named_known, named, ""))
    blank_at = wh_index.get_indexer(_index([""]))[0]  # an order without one looks up id "" (-1 unless WHMCS has it)
    wh_status = _take(wh_statuses, np.where(n == 1, first_live_at[sf_key], np.where(named_known, named_at, blank_at)))

    items = frames.sf_items
    item_order = _values(items, "OrderId")
    items_missing = _isin(sf_ids, item_order[_values(items, "WHMCS_Service_ID__c") == ""])
    services = frames.wh_services
    bad = _equals_any(_values(services, "status"), DRIFT_SERVICE_STATUSES)
    bad_services = services[bad]

    modified = _timestamps(o["LastModifiedDate"])
    no_wh = eff == ""
    account_codes, per_account = _client_parts(_values(o, "Account.WH_Account__c"))
    if frames.paymethods is not None and len(frames.paymethods):
        pm = frames.paymethods
        with_pm = set(pd.to_numeric(pm.loc[pd.to_numeric(pm["paymethods"], errors="coerce") > 0, "clientid"]))
    else:
        with_pm = set()
    has_pm = per_account.isin(with_pm).to_numpy()[account_codes]
    client_text = _client_text(per_account)
    client = client_text[account_codes]

    dup = n > 1
    missing = (named != "") & ~named_known & (n == 0)
    recent = (modified >= now_ts - pd.Timedelta(minutes=recent_minutes)).to_numpy() if recent_minutes > 0 \
        else np.zeros(len(o), dtype=bool)
    in_flight = set(in_flight)
    flying = (_isin(sf_ids, in_flight) if in_flight else np.zeros(len(o), dtype=bool)) | recent
    behind = (wh_status == WhmcsOrderStatus.ACTIVE) & ((act != ActivationStatus.ACTIVATED) | (named != eff)
                                                        | items_missing)
    stale = (modified < now_ts - pd.Timedelta(minutes=stuck_minutes)).to_numpy()
    stuck = (act == ActivationStatus.ACTIVATING) & stale & (no_wh | (wh_status == WhmcsOrderStatus.PENDING))
    recovered = (act == ActivationStatus.FAILED) & (code == ErrorCode.PAYMENT_METHOD_MISSING) & no_wh & has_pm
    pending = (act == ActivationStatus.ACTIVATED) & (wh_status == WhmcsOrderStatus.PENDING)
    sdrift = (act == ActivationStatus.ACTIVATED) & _isin(eff, _values(services, "orderid")[bad])
    masks = [dup, missing, flying, behind, stuck, recovered, pending, sdrift]
    category = np.select(masks, [_CODE[c] for c in _PRECEDENCE], default=_CODE[Category.IN_SYNC])

    orders = _Orders(sf_ids, np.where(eff != "", eff, named), named, act, code, wh_status, client, category,
                     modified, mark_sf, mark_id, live)
    detail = np.full(len(o), "", dtype=object)
    repair = np.full(len(o), "", dtype=object)
    drifted = np.flatnonzero(category != _CODE[Category.IN_SYNC])
    if len(drifted):
        _details(orders, drifted, items, services, bad_services, detail, repair)

    # WHMCS orders that carry an id Salesforce does not have (the first such id of each order)
    in_sf = np.zeros(len(uniques), dtype=bool)
    in_sf[sf_key] = True
    unknown = ~in_sf[mark_key]
    if orphans is not None:
        unknown &= _isin(mark_sf, set(orphans))
    at = np.flatnonzero(unknown)
    at = at[~_index(mark_id[at]).duplicated()]
    orphan_rows = pd.DataFrame({
        "sf_order_id": mark_sf[at], "whmcs_order_id": mark_id[at],
        "category": Category.ORPHAN_IN_WHMCS.value, "client_id": "",
        "detail": [f"WHMCS order {i} ({s}) carries sfOrderId={sf}, which Salesforce does not have"
                   for i, s, sf in zip(mark_id[at], mark_status[at], mark_sf[at], strict=True)],
        "repair_records": "",
    }) if len(at) else None
    if not len(o):  # as the former steps built it: pandas infers other dtypes for empty columns
        out = pd.DataFrame({"sf_order_id": sf_ids, "whmcs_order_id": orders.wh_id,
                            "category": _CATEGORY_NAMES[category], "client_id": client, "detail": "",
                            "repair_records": ""})
        out = out if orphan_rows is None else pd.concat([out, orphan_rows], ignore_index=True)
        out["severity"] = out["category"].map({c.value: s for c, s in SEVERITY.items()})
        return out[CLASSIFIED_COLUMNS]
    # Columns of few distinct values are taken from those (converting each cell to pandas' str was the
    # largest single cost); the dtypes are the ones inference gave (client_id object when all missing).
    drifted_at = np.zeros(len(o), dtype=np.intp)
    drifted_at[drifted] = np.arange(1, len(drifted) + 1)
    out = pd.DataFrame({
        "sf_order_id": sf_ids,
        "whmcs_order_id": orders.wh_id,
        "category": _text(_CATEGORY_NAMES, category),
        "severity": _text(_SEVERITY_NAMES, category),
        "detail": _text(["", *detail[drifted]], drifted_at),
        "client_id": _text(client_text, account_codes) if pd.notna(client_text).any() else client,
        "repair_records": _text(["", *repair[drifted]], drifted_at),
    }, columns=CLASSIFIED_COLUMNS)
    if orphan_rows is not None:
        orphan_rows["severity"] = SEVERITY[Category.ORPHAN_IN_WHMCS]
        out = pd.concat([out, orphan_rows[CLASSIFIED_COLUMNS]], ignore_index=True)
    return out


def _grouped(keys: Iterable[Any], values: Iterable[Any]) -> dict[Any, list[Any]]:
    """``{key: [values in order]}``: a groupby for the few drifted rows without its per-group overhead."""
    groups: dict[Any, list[Any]] = {}
    for k, v in zip(keys, values, strict=True):
        groups.setdefault(k, []).append(v)
    return groups


def _details(v: _Orders, rows: np.ndarray, items: pd.DataFrame, services: pd.DataFrame,
             bad_services: pd.DataFrame, detail: np.ndarray, repair: np.ndarray) -> None:
    """Human-readable ``detail`` and, for SF_BEHIND, the Salesforce records the repair would write.

    Written into ``detail`` / ``repair`` at ``rows`` (plain object arrays: a cell write into a
    DataFrame's string column copies the column).
    """
    cats = v.category
    sel = v.live & _isin(v.mark_sf, set(v.sf_id[rows]))
    live_by_sf = _grouped(v.mark_sf[sel].tolist(), v.mark_id[sel].tolist())
    for ids in live_by_sf.values():
        ids.sort(key=int)
    behind_rows = rows[cats[rows] == _CODE[Category.SF_BEHIND]]
    sub = items[_isin(_values(items, "OrderId"), set(v.sf_id[behind_rows]))].sort_values("Id")
    items_by = _grouped(sub["OrderId"].tolist(), zip(sub["Id"].tolist(), sub["WHMCS_Service_ID__c"].tolist(),
                                                     strict=True))
    svc = services[_isin(_values(services, "orderid"), set(v.wh_id[behind_rows]))].copy()
    svc["n"] = pd.to_numeric(svc["id"], errors="coerce")
    svc = svc.sort_values("n")
    services_by = _grouped(svc["orderid"].tolist(), svc["id"].tolist())
    bad = bad_services[_isin(_values(bad_services, "orderid"), set(v.wh_id[rows]))]
    bad_by = {k: ", ".join(g) for k, g in _grouped(bad["orderid"].tolist(), (
        f"{i} {s}" for i, s in zip(bad["id"].tolist(), bad["status"].tolist(), strict=True))).items()}
    for r in rows.tolist():
        sf_id, wh_id, cat, named, act = v.sf_id[r], v.wh_id[r], _CATEGORIES[cats[r]], v.named[r], v.act[r]
        if cat == Category.DUPLICATE_IN_WHMCS:
            live = live_by_sf.get(sf_id, [])
            text = f"{len(live)} live WHMCS orders carry the marker: {', '.join(live)}"
        elif cat == Category.MISSING_IN_WHMCS:
            text = f"Salesforce names WHMCS order {named}; WHMCS does not have it and no order carries the marker"
        elif cat == Category.IN_FLIGHT:
            text = f"provisioning in flight or changed recently (Activation_Status__c={act or 'empty'})"
        elif cat == Category.SF_BEHIND:
            pairs = items_by.get(sf_id, [])
            svc_ids = services_by.get(wh_id, [])
            text = f"WHMCS order {wh_id} is Active; Salesforce has Activation_Status__c={act or 'empty'}, " \
                   f"WHMCS_Order_ID__c={named or 'empty'}, {sum(1 for _, s in pairs if not s)} item(s) without service id"
            if len(pairs) == len(svc_ids) and pairs:
                records = [{"attributes": {"type": "Order"}, "id": sf_id,
                            "Activation_Status__c": ActivationStatus.ACTIVATED,
                            "WHMCS_Order_ID__c": wh_id, "Activation_Error_Code__c": None,
                            "Activation_Error_Message__c": None}]
                records += [{"attributes": {"type": "OrderItem"}, "id": item_id, "WHMCS_Service_ID__c": service_id}
                            for (item_id, _), service_id in zip(pairs, svc_ids, strict=True)]
                repair[r] = json.dumps(records, separators=(",", ":"))
            else:
                text += f"; cannot map {len(svc_ids)} service(s) to {len(pairs)} item(s): not repaired"
        elif cat == Category.STUCK_ACTIVATING:
            since = v.modified.iloc[r]
            text = f"Activating since {since:%Y-%m-%d %H:%M} UTC" + (
                f"; WHMCS order {wh_id} still {v.wh_status[r]}" if wh_id else "; no WHMCS order")
        elif cat == Category.PAYMENT_RECOVERED:
            text = f"Failed with {v.code[r]}; WHMCS client {v.client[r]} now has a pay method"
        elif cat == Category.WHMCS_PENDING:
            text = f"Salesforce Activated; WHMCS order {wh_id} still Pending"
        elif cat == Category.SERVICE_DRIFT:
            text = f"Salesforce Activated; WHMCS service(s) {bad_by.get(wh_id, '')}"
        else:
            text = ""
        detail[r] = re.sub(r"\s+", " ", text).strip()


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
