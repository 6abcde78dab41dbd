"""The compare step alone: our ``load_frames`` + ``classify`` vs datacompy's PandasCompare, same frames.

How the frames are made: for each ``--orders N`` a sandbox data folder is seeded with N provisioned
orders (``seed_provisioned``, rng seed 7), the emulators (Salesforce + WHMCS only, free ports, no
Airflow) are started, ~1 % of the orders are drifted across every category (``make_drift``) and the
pipeline's own extraction functions (``orderflow.reconcile.extract``) write the extract files over
HTTPS, exactly as the ``reconcile_orders`` tasks do. The folder is cached under ``--cache``
(``<cache>/<N>/extract``) and reused by later runs, so only the first run per size pays for seeding.

Then, in one process, each timing is taken ``--repeat`` times (ours and datacompy's alternating, so
a busy machine slows both alike) and the median printed:

  load_frames(folder)                          reading the five CSVs
  classify(frames, set(), now, 60)             our classification (what bench/reconcile_bench.py's anchor times)
  datacompy.PandasCompare(sf, wh, "sf_order_id") + all_mismatch()   the anchor, on frames built from ours
  peak memory of one call of each              tracemalloc (Python and NumPy allocations) and the rise of RSS
                                               over the process's level before the call, sampled every 2 ms
                                               (also counts Arrow's buffers, which tracemalloc does not see)

    .venv/bin/python bench/compare_bench.py --orders 100000 --orders 300000 [--repeat 3] [--cache DIR]
    .venv/bin/python bench/compare_bench.py --orders 100000 --impl /tmp/old_compare.py   # another version, e.g.
        git show HEAD~1:include/orderflow/reconcile/compare.py > /tmp/old_compare.py

Figures only, no pass/fail; the target (issue 10) is ours <= datacompy at both sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "orderflow-compare-bench"


def make_folder(n: int, cache: Path, drift_pct: float = 1.0) -> Path:
    """``<cache>/<n>/extract``: seeded, drifted and extracted once, then reused."""
    extract = cache / str(n) / "extract"
    if (extract / "done").exists():
        return extract
    sys.path.insert(0, str(REPO / "sandbox"))
    from orderflow.reconcile import compare
    from orderflow.reconcile import extract as ext
    from orderflow_sandbox.connections import salesforce_client, whmcs_client
    from orderflow_sandbox.drift import make_drift
    from orderflow_sandbox.seed import seed_provisioned
    from orderflow_sandbox.server import Sandbox

    data_dir = cache / str(n) / "sandbox"
    if data_dir.exists():  # a half-made folder from an interrupted run: start again
        import shutil

        shutil.rmtree(cache / str(n))
    t0 = time.monotonic()
    print(f"{n} orders: seeding {data_dir} ...", flush=True)
    seed_provisioned(data_dir, orders=n, rng_seed=7)
    sandbox = Sandbox(data_dir, components={"salesforce", "whmcs"})
    sandbox.start()
    try:
        make_drift(data_dir, per_category=max(1, round(n * drift_pct / 100 / 9)), rng_seed=7)
        sf = salesforce_client(sandbox.endpoints, token_cache=None)
        ext.extract_salesforce(sf, extract, ext.Scope())
        with whmcs_client(sandbox.endpoints) as wh:
            ext.extract_whmcs(wh, extract)
            orders = compare.load_frames(extract).sf_orders
            ext.extract_pay_methods(wh, extract, compare.payment_recovery_clients(orders))
    finally:
        sandbox.stop()
    (extract / "done").write_text("")
    print(f"{n} orders: seeded, drifted and extracted in {time.monotonic() - t0:.0f} s", flush=True)
    return extract


def median_times(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Median seconds of each function, the functions taking turns."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


class RssPeak(threading.Thread):
    """Highest RSS of this process while running, minus the RSS at the start."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> RssPeak:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def rise(self) -> int:
        return self.peak - self.base


def peak_memory(fn: Callable[[], Any]) -> tuple[int, int]:
    """(tracemalloc peak, RSS rise) of a call, each from a call of its own after a collection (tracemalloc's
    own bookkeeping would count in RSS). The RSS rise is a floor: memory freed by earlier calls is reused."""
    gc.collect()
    tracemalloc.start()
    result = fn()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    gc.collect()
    with RssPeak() as rss:
        result = fn()
    del result
    return traced, rss.rise


def load_impl(path: Path | None) -> Any:
    """The compare module to time: the checkout's, or another version's file (``--impl``)."""
    if path is None:
        from orderflow.reconcile import compare

        return compare
    spec = importlib.util.spec_from_file_location("compare_impl", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_impl"] = module
    spec.loader.exec_module(module)
    return module


def datacompy_frames(frames: Any) -> tuple[Any, Any]:
    """The anchor's two frames, built exactly as bench/reconcile_bench.py's ``anchor`` builds them."""
    sf = frames.sf_orders[["Id", "WHMCS_Order_ID__c", "Activation_Status__c"]].rename(
        columns={"Id": "sf_order_id", "WHMCS_Order_ID__c": "whmcs_order_id", "Activation_Status__c": "status"})
    wo = frames.wh_orders
    wh = wo.assign(sf_order_id=wo["sf_order_ids"].str.split()).explode("sf_order_id")
    wh = wh[["sf_order_id", "id", "status"]].rename(columns={"id": "whmcs_order_id"})
    wh["status"] = wh["status"].map({"Active": "Activated"}).fillna(wh["status"])
    return sf, wh


def bench_one(folder: Path, repeat: int, impl: Any) -> dict[str, Any]:
    import datacompy

    frames = impl.load_frames(folder)
    now = dt.datetime.now(dt.UTC)
    sf, wh = datacompy_frames(frames)

    def ours() -> Any:
        return impl.classify(frames, set(), now, 60)

    def theirs() -> Any:
        return datacompy.PandasCompare(sf, wh, join_columns="sf_order_id").all_mismatch()

    ours_s, theirs_s, load_s = median_times([ours, theirs, lambda: impl.load_frames(folder)], repeat)
    out = ours()
    return {"orders": len(frames.sf_orders), "load_s": load_s, "ours_s": ours_s, "datacompy_s": theirs_s,
            "ours_mem": peak_memory(ours), "datacompy_mem": peak_memory(theirs), "rows": (len(sf), len(wh)),
            "classified": len(out), "drifted": int((out["category"] != "IN_SYNC").sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="repeatable; default 100000")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure; the median is printed")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"extraction folders (default {DEFAULT_CACHE})")
    parser.add_argument("--folder", type=Path, action="append", help="an existing extract folder instead of --orders")
    parser.add_argument("--impl", type=Path, help="time this compare.py file instead of the checkout's")
    args = parser.parse_args()
    impl = load_impl(args.impl)
    folders = list(args.folder or []) or [make_folder(n, args.cache) for n in (args.orders or [100_000])]
    print(f"compare module: {impl.__file__}")
    print(f"{'orders':>7} {'load_frames':>11} {'classify':>9} {'datacompy':>9} {'ratio':>5}  "
          f"{'peak: classify':>22} {'datacompy':>20}  rows sf x wh, drifted")
    mib = 2**20
    for folder in folders:
        r = bench_one(folder, args.repeat, impl)
        (ot, orss), (dt_, drss) = r["ours_mem"], r["datacompy_mem"]
        print(f"{r['orders']:>7} {r['load_s']:>10.2f}s {r['ours_s']:>8.2f}s {r['datacompy_s']:>8.2f}s "
              f"{r['ours_s'] / r['datacompy_s']:>5.2f}  {ot / mib:>5.0f} MiB / RSS +{orss / mib:>4.0f} MiB "
              f"{dt_ / mib:>5.0f} / RSS +{drss / mib:>4.0f} MiB  "
              f"{r['rows'][0]} x {r['rows'][1]}, {r['drifted']} of {r['classified']}", flush=True)
    print(f"(median of {args.repeat}; ratio = classify / datacompy, target <= 1; peak = tracemalloc / RSS rise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
