"""The fixture form: run load from plain test code and assert on the result.

``swarm.run`` takes a user function (or a weighted mix of them) whose arguments are per-user
fixtures, runs it as the body of ``users`` virtual users and returns the aggregated result.
Times are in seconds.
"""

from __future__ import annotations


def browse(http):
    http.get("/items", name="items")


def look_at_cart(shopper):  # shopper: the per-user login fixture from conftest.py
    shopper.get("/cart", name="cart")


def test_browse_latency(swarm):
    result = swarm.run(browse, users=10, rate=10, duration="3s", wait=(0.05, 0.1))
    assert result["items"].p95 < 0.300
    assert result.error_ratio == 0
    assert result.total.rps > 5


def test_weighted_mix(swarm):
    # Three browsers for every cart viewer, chosen at random on each iteration.
    result = swarm.run({browse: 3, look_at_cart: 1}, users=8, duration="3s", wait=0.05)
    assert result["items"].count > result["cart"].count > 0
    assert result["cart"].p99 < 0.300
    assert result.total.failures == 0
    assert result["POST /login"].count == result.users  # one login per virtual user
