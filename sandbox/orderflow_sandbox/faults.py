"""Run-time fault injection shared by both emulators.

A rule matches a target (a WHMCS action such as ``AddOrder``, or a Salesforce endpoint
name such as ``query``, ``sobject_patch``, ``collections``, ``token``, ``pubsub.Subscribe``;
``*`` matches every target) and fires either for the next ``count`` matching calls or with
a ``probability`` drawn from a seeded RNG, so fault tests are repeatable.

Kinds are emulator-specific strings (``latency``, ``http_500``, ``http_502``, ``http_503``,
``html_200``, ``drop``, ``commit_then_drop``, ``invalid_session``, ``request_limit``,
``unable_to_lock_row``, ``stream_reset``, ``lose_event`` on target ``flow``); each emulator decides
what a kind does.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field


@dataclass
class FaultRule:
    kind: str
    target: str = "*"
    count: int | None = 1  # None = unlimited (use with probability)
    probability: float = 1.0
    latency_ms: int = 0
    seed: int | None = None
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng = random.Random(self.seed)
        if self.count is not None and self.count < 0:
            raise ValueError(f"fault 'count' must be >= 0, got {self.count}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault 'probability' must be within 0..1, got {self.probability}")

    def public(self) -> dict:
        data = asdict(self)
        data.pop("_rng", None)
        return data


class FaultRegistry:
    """Thread-safe list of active fault rules."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def add_from_dict(self, spec: dict) -> FaultRule:
        allowed = {"kind", "target", "count", "probability", "latency_ms", "seed"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "kind" not in spec:
            raise ValueError("fault field 'kind' is required")
        rule = FaultRule(**spec)
        self.add(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [r.public() for r in self._rules]

    def take(self, target: str, kinds: set[str] | None = None) -> list[FaultRule]:
        """Return (and consume) the rules that fire for this call, in insertion order."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in list(self._rules):
                if rule.target not in ("*", target):
                    continue
                if kinds is not None and rule.kind not in kinds:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability < 1.0 and rule._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                fired.append(rule)
            self._rules = [r for r in self._rules if r.count is None or r.fired < r.count]
        return fired


class CallStats:
    """Thread-safe call counters per name (``GET /__sandbox/stats``)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
