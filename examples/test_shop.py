"""The marker form: the test body is one iteration of a virtual user.

Each of the users gets its own ``shopper`` (and so its own ``http`` session, cookie and login);
``swarm_user`` tells the body which user it is. The ``slo`` marks decide the verdict: a missed
objective fails the test with a table of measured values beside the limits.
"""

from __future__ import annotations

import pytest


@pytest.mark.load(users=10, rate=10, duration="4s", wait=(0.05, 0.2))
@pytest.mark.slo("p95 < 300ms", "error_rate < 1%")
@pytest.mark.slo("p99 < 500ms", request="GET /cart")
def test_shopping(shopper, swarm_user):
    shopper.get("/items")  # recorded as "GET /items"
    item = f"item-{swarm_user.index}-{swarm_user.iteration}"
    shopper.post("/cart", json={"item": item, "qty": 1}, name="POST /cart")
    # catch_response: the code decides whether the request counts as a success.
    with shopper.get("/cart", name="GET /cart", catch_response=True) as response:
        if response.status_code != 200:
            response.failure(f"status {response.status_code}")
        elif response.json()["user"] != f"user-{swarm_user.index}":
            response.failure("someone else's cart")


@pytest.mark.load(users=5, wait=0.1)  # duration: swarm_duration from pytest.ini
@pytest.mark.slo("p95 < 100ms")
def test_item_pages(http, swarm_user):
    # Name a family of URLs once, so they share one row and one set of statistics.
    item_id = 1 + (swarm_user.index * 7 + swarm_user.iteration) % 1000
    http.get(f"/items/{item_id}", name="GET /items/:id")
    # A 404 is expected here: catch_response lets the test count it as a success.
    with http.get("/items/999999", name="GET /items/missing", catch_response=True) as response:
        if response.status_code == 404:
            response.success()
        else:
            response.failure(f"expected 404, got {response.status_code}")
