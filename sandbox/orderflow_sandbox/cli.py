"""``orderflow-sandbox``: run, seed and steer the local Salesforce org and WHMCS emulators.

Admin commands talk to a running sandbox over HTTPS (``/__sandbox/...``), using the URLs
and CA in ``<data-dir>/endpoints.json``; ``seed`` writes the data folder directly, so it
works whether or not the sandbox is running.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from orderflow_sandbox.admin import admin_call

DEFAULT_DATA_DIR = ".sandbox"


def cmd_serve(args: argparse.Namespace) -> int:
    from orderflow_sandbox.server import Ports, Sandbox

    components = set(args.components.split(",")) if args.components else Sandbox.ALL
    sandbox = Sandbox(
        args.data_dir,
        host=args.host,
        ports=Ports(args.salesforce_port, args.whmcs_port, args.pubsub_port),
        components=components,
    )
    endpoints = sandbox.start()
    print(f"orderflow sandbox running; endpoints written to {Path(args.data_dir).resolve() / 'endpoints.json'}")
    for system in ("salesforce", "whmcs"):
        if system in endpoints:
            url = endpoints[system].get("instance_url") or endpoints[system].get("url")
            print(f"  {system:<10} {url}")
    if "salesforce" in endpoints:
        print(f"  {'pubsub':<10} {endpoints['salesforce'].get('pubsub_endpoint')}")
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sandbox.stop()
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from orderflow_sandbox.seed import seed_provisioned, seed_sandbox

    seed = seed_provisioned if args.provisioned else seed_sandbox
    summary = seed(Path(args.data_dir), orders=args.orders, rng_seed=args.seed)
    summary.pop("expected", None)  # one line per order: it is in expected_outcomes_file instead
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from orderflow_sandbox.drift import DRIFT_EXPECTED_FILE, make_drift

    expected = make_drift(Path(args.data_dir), per_category=args.per_category, rng_seed=args.seed)
    counts: dict[str, int] = {}
    for category in expected.values():
        counts[category] = counts.get(category, 0) + 1
    print(json.dumps({"counts": counts, "expected_file": str(Path(args.data_dir).resolve() / DRIFT_EXPECTED_FILE)},
                     indent=2))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from orderflow_sandbox.salesforce.approve import approve_orders

    if not args.all and not args.order_ids:
        raise SystemExit("approve: give ORDER_ID... or --all")
    approved = approve_orders(Path(args.data_dir), None if args.all else args.order_ids, status=args.status)
    print(json.dumps({"approved": approved}, indent=2))
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    if args.action == "list":
        result = admin_call(args.data_dir, args.system, "GET", "/faults")
    elif args.action == "clear":
        result = admin_call(args.data_dir, args.system, "DELETE", "/faults")
    else:
        spec: dict = {"kind": args.kind, "target": args.target}
        if args.count is not None:
            spec["count"] = None if args.count == 0 else args.count
        if args.probability is not None:
            spec["probability"] = args.probability
        if args.latency_ms is not None:
            spec["latency_ms"] = args.latency_ms
        if args.rng_seed is not None:
            spec["seed"] = args.rng_seed
        result = admin_call(args.data_dir, args.system, "POST", "/faults", spec)
    print(json.dumps(result, indent=2))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    systems = [args.system] if args.system else ["salesforce", "whmcs"]
    out = {}
    for system in systems:
        out[system] = admin_call(args.data_dir, system, "DELETE" if args.reset else "GET", "/stats")
    print(json.dumps(out, indent=2))
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    out = {system: admin_call(args.data_dir, system, "GET", "/state") for system in (args.system or "salesforce,whmcs").split(",")}
    print(json.dumps(out, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderflow-sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="sandbox data folder (default: .sandbox)")
    # --data-dir is accepted after the subcommand too (`serve --data-dir D`); given there, it wins.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, help="sandbox data folder (default: .sandbox)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="run the emulators until interrupted")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--salesforce-port", type=int, default=0, help="0 = any free port")
    p.add_argument("--whmcs-port", type=int, default=0)
    p.add_argument("--pubsub-port", type=int, default=0)
    p.add_argument("--components", default="", help="comma list of salesforce,pubsub,whmcs (default: all)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("seed", parents=[common], help="load the catalogue, clients, accounts and N orders in Pending Review")
    p.add_argument("--orders", type=int, default=20)
    p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    p.add_argument("--provisioned", action="store_true",
                   help="as if already provisioned: Salesforce Activated with WHMCS ids, WHMCS orders Active")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("drift", parents=[common],
                       help="break K provisioned orders per reconciliation category (running sandbox)")
    p.add_argument("--per-category", type=int, default=2)
    p.add_argument("--seed", type=int, default=7, help="random seed (which orders are picked)")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("approve", parents=[common], help="approve orders through the REST API (runs the Flow)")
    p.add_argument("order_ids", nargs="*", metavar="ORDER_ID")
    p.add_argument("--all", action="store_true", help="every order in Pending Review")
    p.add_argument("--status", default="Approved", choices=["Approved", "Reactivate"])
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("faults", parents=[common], help="inject, list or clear faults")
    p.add_argument("action", choices=["add", "list", "clear"])
    p.add_argument("--system", required=True, choices=["salesforce", "whmcs"])
    p.add_argument("--kind", help="e.g. latency, http_500, html_200, drop, commit_then_drop, invalid_session, "
                                     "lose_event (with --target flow)")
    p.add_argument("--target", default="*", help="action / endpoint name (flow: the approval Flow), * for all")
    p.add_argument("--count", type=int, help="fire for the next N calls (0 = unlimited)")
    p.add_argument("--probability", type=float)
    p.add_argument("--latency-ms", type=int)
    p.add_argument("--rng-seed", type=int)
    p.set_defaults(func=cmd_faults)

    p = sub.add_parser("stats", parents=[common], help="API call counts per endpoint / action")
    p.add_argument("--system", choices=["salesforce", "whmcs"])
    p.add_argument("--reset", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("dump", parents=[common], help="dump the emulators' state as JSON")
    p.add_argument("--system", help="salesforce,whmcs (default both)")
    p.set_defaults(func=cmd_dump)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "faults" and args.action == "add" and not args.kind:
        raise SystemExit("faults add: --kind is required")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
