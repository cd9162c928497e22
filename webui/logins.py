"""Logins: passwords compared in constant time (an unknown user costs the same as a wrong password), and failed
attempts backing off exponentially per client address and per user name."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable

FREE_FAILURES = 5  # failures allowed before any wait
BASE_WAIT_S = 1.0  # the wait after the fifth failure; it doubles with each further one
MAX_WAIT_S = 900.0
QUIET_RESET_S = 3600.0  # an hour without failures and a key starts afresh
MAX_TRACKED = 10_000  # keys remembered at most (a flood of made-up user names cannot fill memory)
TOO_MANY = "Too many failed logins: wait {seconds} s before trying again."
LOGIN_NOTE = ("After 5 failed attempts, each further attempt from the same address or for the same user waits "
              "longer (1 s, 2 s, 4 s, ... up to 15 minutes).")


class Credentials:
    """The accounts the studio accepts; ``verify`` is what Gradio's login calls."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._key = secrets.token_bytes(32)
        self._digests = {user: self._digest(password) for user, password in pairs}
        self._dummy = self._digest(secrets.token_hex(32))  # what an unknown user's password is compared with

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def verify(self, username: str, password: str) -> bool:
        """Same work whether the user is unknown or the password wrong: one keyed hash, one constant-time
        comparison of equal-length digests."""
        expected = self._digests.get(username, self._dummy)
        matches = hmac.compare_digest(self._digest(password), expected)
        return matches and username in self._digests


class LoginLimiter:
    """Counts failed logins per key (a client address, a user name) and says how long a key must wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures in a row, time of the last)

    @staticmethod
    def wait_after(failures: int) -> float:
        """Seconds a key waits after ``failures`` failures in a row."""
        if failures < FREE_FAILURES:
            return 0.0
        return min(MAX_WAIT_S, BASE_WAIT_S * 2 ** (failures - FREE_FAILURES))

    @classmethod
    def seconds_for(cls, attempts: int) -> float:
        """The least time ``attempts`` failed logins from one client can take."""
        return sum(cls.wait_after(n) for n in range(attempts - 1))

    def retry_after(self, keys: list[str]) -> float:
        """How long until all of ``keys`` may try again (0: now)."""
        now = self.clock()
        waits = [last + self.wait_after(count) - now for count, last in
                 (self._failures.get(k, (0, 0.0)) for k in keys)]
        return max([0.0, *waits])

    def failed(self, keys: list[str]) -> None:
        now = self.clock()
        for key in keys:
            count, last = self._failures.get(key, (0, now))
            self._failures[key] = (1 if now - last > QUIET_RESET_S else count + 1, now)
        if len(self._failures) > MAX_TRACKED:
            self._forget_oldest()

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _forget_oldest(self) -> None:
        oldest = sorted(self._failures, key=lambda k: self._failures[k][1])
        for key in oldest[: len(oldest) - MAX_TRACKED // 2]:
            del self._failures[key]


def retry_seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least one."""
    return max(1, math.ceil(wait))
