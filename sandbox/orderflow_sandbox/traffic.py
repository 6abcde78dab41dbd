"""Approval traffic: seeded orders approved in small waves, some with their event lost.

Used by the interactive demo (a few approvals a minute, so a newcomer sees runs appear, succeed,
fail with codes and get swept) and by the soak test (waves spread over many sensor runs). Orders are
approved through the org's REST API, so the Flow runs as in a real org; a lost event is the sandbox
fault ``lose_event`` (the Flow sets ``Activating`` but publishes nothing), which only the sweep finds.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from orderflow_sandbox.admin import lose_next_events
from orderflow_sandbox.salesforce.approve import approve_orders
from orderflow_sandbox.seed import ACTIVATED, seed_sandbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wave:
    """One batch of approvals: when, which orders, which lost their event, what each should end as."""

    approved_at: float  # epoch seconds, just before the approval call
    order_ids: tuple[str, ...]
    lost: tuple[str, ...]
    expected: dict[str, str]  # order id -> "Activated" or the error code it must fail with

    @property
    def bad_apples(self) -> dict[str, str]:
        return {oid: outcome for oid, outcome in self.expected.items() if outcome != ACTIVATED}


class ApprovalTraffic:
    """A pool of seeded orders in Pending Review, approved on demand; refilled by seeding more."""

    def __init__(self, data_dir: str | Path, rng_seed: int = 11, reserve: int = 200) -> None:
        self.data_dir = Path(data_dir)
        self.rng = random.Random(rng_seed)
        self.reserve = reserve
        self._seed_no = rng_seed
        self.good: list[str] = []
        self.bad: list[str] = []
        self.expected: dict[str, str] = {}

    def _refill(self) -> None:
        self._seed_no += 1
        summary = seed_sandbox(self.data_dir, orders=self.reserve, rng_seed=self._seed_no)
        expected: dict[str, str] = summary["expected"]
        self.expected.update(expected)
        good = [oid for oid, outcome in expected.items() if outcome == ACTIVATED]
        bad = [oid for oid, outcome in expected.items() if outcome != ACTIVATED]
        self.rng.shuffle(good)
        self.rng.shuffle(bad)
        self.good += good
        self.bad += bad

    def approve(self, size: int, lose: int = 0, bad: int = 0) -> Wave:
        """Approve ``size`` orders: ``bad`` of them bad apples, ``lose`` (healthy ones) without their event."""
        if not 0 <= lose + bad <= size:
            raise ValueError(f"lose ({lose}) + bad ({bad}) must be between 0 and size ({size})")
        while len(self.good) < size - bad or len(self.bad) < bad:
            self._refill()
        healthy = [self.good.pop() for _ in range(size - bad)]
        apples = [self.bad.pop() for _ in range(bad)]
        lost, rest = healthy[:lose], healthy[lose:] + apples
        approved_at = time.time()
        if lost:
            # One call for exactly these orders while the fault is armed, so no other approval loses its event.
            lose_next_events(self.data_dir, len(lost))
            approve_orders(self.data_dir, lost)
        if rest:
            approve_orders(self.data_dir, rest)
        ids = tuple(lost + rest)
        wave = Wave(approved_at, ids, tuple(lost), {oid: self.expected[oid] for oid in ids})
        log.info("approved %d order(s), %d without event, %d bad apple(s)", len(ids), len(lost), len(apples))
        return wave
