"""What one direction of a link does to the bytes it carries, drawn from the seeded RNG.

A TCP stream never loses, duplicates, reorders or corrupts bytes as the application
sees them: the kernel's TCP retransmits. So on a stream, ``loss`` and ``corrupt`` show
as delay (one retransmission timeout per lost or damaged segment, doubling: Linux's
200 ms minimum RTO), and ``duplicate``/``reorder`` do nothing; the bytes of one stream
arrive in order. A datagram (UDP: Legion, subscriptions, cache replication) is dropped,
duplicated, delayed past later ones or delivered with a damaged byte (``corrupt``: the
UDP checksum is optional and uWSGI's receivers do not check one) as the settings say.

Draws are made only for the settings that are not zero, so links left at their
defaults do not consume the RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from random import Random
from typing import Any

__all__ = ["LinkSettings", "RTO"]

#: TCP's first retransmission timeout (Linux ``TCP_RTO_MIN``), doubling on each loss.
RTO = 0.2


def _check(name: str, value: Any, *, probability: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or math.isnan(value) or value < 0:
        raise ValueError(f"link {name} must be a number >= 0, not {value!r}")
    if probability and value >= 1:
        raise ValueError(f"link {name} is a probability below 1, not {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkSettings:
    """One direction of a link: ``latency`` (seconds, one way), ``jitter`` (extra
    seconds, uniform in ``[0, jitter)``), ``loss``/``duplicate``/``reorder``/``corrupt``
    (probabilities per packet), ``bandwidth`` (bytes per second, None: unlimited)."""

    latency: float = 0.0001
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    bandwidth: float | None = None
    corrupt: float = 0.0

    def __post_init__(self) -> None:
        _check("latency", self.latency)
        _check("jitter", self.jitter)
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            _check(name, getattr(self, name), probability=True)
        if self.bandwidth is not None:
            _check("bandwidth", self.bandwidth)
            if self.bandwidth == 0:
                raise ValueError("link bandwidth must be > 0 (None: unlimited)")

    def changed(self, **changes: Any) -> LinkSettings:
        return replace(self, **changes)

    def stream_delay(self, rng: Random, nbytes: int, slow: float) -> float:
        """How long ``nbytes`` of a TCP stream take to arrive."""
        if not (self.jitter or self.loss or self.corrupt) and self.bandwidth is None:
            return self.latency * slow  # nothing drawn (the default links)
        delay = self._base(rng, nbytes, slow)
        if self.loss or self.corrupt:
            damaged = 1 - (1 - self.loss) * (1 - self.corrupt)
            rto = RTO
            while rng.random() < damaged:
                delay += rto
                rto *= 2
        return delay

    def damage(self, rng: Random, data: bytes) -> bytes:
        """A datagram as it arrives: with probability ``corrupt``, one byte changed."""
        if not self.corrupt or not data or rng.random() >= self.corrupt:
            return data
        at = rng.randrange(len(data))
        return data[:at] + bytes((data[at] ^ rng.randrange(1, 256),)) + data[at + 1:]

    def datagram_delays(self, rng: Random, nbytes: int, slow: float) -> list[float]:
        """When each copy of a datagram arrives: none if lost, two if duplicated."""
        if self.loss and rng.random() < self.loss:
            return []
        delays = [self._base(rng, nbytes, slow)]
        if self.duplicate and rng.random() < self.duplicate:
            delays.append(self._base(rng, nbytes, slow))
        if self.reorder and rng.random() < self.reorder:
            delays[0] += self.latency * slow + rng.random() * (self.jitter + self.latency)
        return delays

    def _base(self, rng: Random, nbytes: int, slow: float) -> float:
        delay = self.latency
        if self.jitter:
            delay += rng.random() * self.jitter
        if self.bandwidth is not None:
            delay += nbytes / self.bandwidth
        return delay * slow
