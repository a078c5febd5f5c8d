"""Injected failures: gateway errors, latency, 429 storms, and the lost response (the write commits,
the client sees a 502), which is what breeds duplicates in clients that retry creates blindly."""

from __future__ import annotations

import random
import threading


class Faults:
    """Mutable at any time, from any thread. Seeded, so a failing run can be replayed."""

    def __init__(
        self,
        random_502_rate: float = 0.0,
        random_504_rate: float = 0.0,
        latency_s: float = 0.0,
        lost_response_rate: float = 0.0,
        seed: int | None = None,
        random_429_rate: float = 0.0,
    ) -> None:
        self.random_502_rate = random_502_rate
        self.random_504_rate = random_504_rate
        self.latency_s = latency_s
        self.lost_response_rate = lost_response_rate
        # 429 storm: other apps of the account use up the shared budget, so calls are refused although
        # this client stays below the limit (see `rate_limit_next_requests`)
        self.random_429_rate = random_429_rate
        self._lock = threading.Lock()
        self._forced_lost = 0
        self._forced_gateway: list[int] = []
        self._forced_429 = 0
        self._storm_rng = random.Random(None if seed is None else seed + 429)
        self._seed = seed
        self._rng = random.Random(seed)

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        with self._lock:
            self._seed = value
            self._rng = random.Random(value)
            self._storm_rng = random.Random(None if value is None else value + 429)

    def lose_next_writes(self, n: int = 1) -> None:
        """The next `n` write calls commit and then answer 502."""
        with self._lock:
            self._forced_lost += n

    def fail_next_requests(self, n: int = 1, status: int = 502) -> None:
        """The next `n` API calls answer `status` (502/503/504) without doing anything."""
        with self._lock:
            self._forced_gateway.extend([status] * n)

    def rate_limit_next_requests(self, n: int = 1) -> None:
        """A 429 burst: the next `n` API calls answer HubSpot's ten-secondly 429 (nothing is done)."""
        with self._lock:
            self._forced_429 += n

    @property
    def pending_lost_responses(self) -> int:
        return self._forced_lost

    def clear(self) -> None:
        with self._lock:
            self.random_502_rate = self.random_504_rate = self.lost_response_rate = 0.0
            self.random_429_rate = 0.0
            self.latency_s = 0.0
            self._forced_lost = 0
            self._forced_gateway.clear()
            self._forced_429 = 0

    def roll_rate_limit(self) -> bool:
        """Whether this call is refused by a 429 storm (drawn from dice of their own, so turning the
        storm on does not shift the gateway and lost-response faults of a seeded run)."""
        with self._lock:
            if self._forced_429 > 0:
                self._forced_429 -= 1
                return True
            return self.random_429_rate > 0 and self._storm_rng.random() < self.random_429_rate

    def roll_gateway(self) -> int | None:
        with self._lock:
            if self._forced_gateway:
                return self._forced_gateway.pop(0)
            draw = self._rng.random()
            if draw < self.random_502_rate:
                return 502
            if draw < self.random_502_rate + self.random_504_rate:
                return 504
            return None

    def roll_lost_response(self) -> bool:
        with self._lock:
            if self._forced_lost > 0:
                self._forced_lost -= 1
                return True
            return self.lost_response_rate > 0 and self._rng.random() < self.lost_response_rate

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "random_502_rate": self.random_502_rate,
            "random_504_rate": self.random_504_rate,
            "latency_s": self.latency_s,
            "lost_response_rate": self.lost_response_rate,
            "random_429_rate": self.random_429_rate,
            "seed": self._seed,
            "pending_lost_responses": self._forced_lost,
            "pending_gateway_failures": len(self._forced_gateway),
            "pending_rate_limited": self._forced_429,
        }

    def update(self, settings: dict[str, float | int | None]) -> None:
        rates = ("random_502_rate", "random_504_rate", "latency_s", "lost_response_rate", "random_429_rate")
        for key in rates:
            if key in settings and settings[key] is not None:
                setattr(self, key, float(settings[key]))  # type: ignore[arg-type]
        if "seed" in settings:
            seed = settings["seed"]
            self.seed = None if seed is None else int(seed)
        if settings.get("lose_next_writes"):
            self.lose_next_writes(int(settings["lose_next_writes"]))  # type: ignore[arg-type]
        if settings.get("rate_limit_next_requests"):
            self.rate_limit_next_requests(int(settings["rate_limit_next_requests"]))  # type: ignore[arg-type]
