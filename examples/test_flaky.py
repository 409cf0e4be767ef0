"""Tolerating some failures: an ``error_rate`` objective instead of "no failure at all".

The demo's ``/flaky`` endpoint answers 500 to about 2 % of requests. Without an ``error_rate``
(or ``failures``) objective, a single failure fails a load test; with one, the objective decides.
A failed ``assert`` in the body fails that iteration only: it is counted (under the test's
name) and the user goes on.
"""

from __future__ import annotations

import pytest


@pytest.mark.load(users=5, rate=5, duration="3s", wait=0.02)
@pytest.mark.slo("error_rate < 10%", "p99 < 200ms")
@pytest.mark.slo("requests >= 20", "rps > 5")
def test_flaky_endpoint(http):
    response = http.get("/flaky")
    assert response.text in ("ok", "flaky failure")
