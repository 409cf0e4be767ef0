"""JUnit XML against Jenkins xunit's junit-10.xsd (tests/fixtures/junit/junit-10.xsd).

pytest's default family (xunit2) with figures as testcase properties fails that schema
("Unexpected child with tag 'properties'"): that layout is now opt-in
(``--swarm-junit=properties``). By default the file validates, the figures in each testcase's
system-out and the suite's properties; one process and ``-n 2``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import RunSwarm

xmlschema = pytest.importorskip("xmlschema")

XSD = Path(__file__).parents[1] / "fixtures" / "junit" / "junit-10.xsd"

TESTS = """
import pytest

@pytest.mark.load(users=2, rate=100, duration="1s")
def test_home(http):
    http.get("/")

@pytest.mark.load(users=1, rate=100, duration="1s", iterations=3)
def test_missing(http):
    http.get("/missing")

def test_scripted(swarm):
    swarm.run(lambda http: http.get("/"), users=1, rate=100, duration="1s", iterations=2)
"""


def _junit(pytester: pytest.Pytester) -> Path:
    return next(pytester.path.glob("junit-*.xml"))


def test_the_properties_layout_fails_the_schema_but_keeps_the_figures_in_the_testcase(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(test_j=TESTS)
    run = swarm_pytest("--swarm-junit=properties")
    run.result.assert_outcomes(passed=2, failed=1)
    errors = list(xmlschema.XMLSchema(str(XSD)).iter_errors(str(_junit(pytester))))
    assert errors and "properties" in str(errors[0])
    home = run.testcase("test_home")
    assert (
        int(
            next(p for p in home.iter("property") if p.get("name") == "swarm_requests").get(
                "value", "0"
            )
        )
        > 0
    )
    assert int(run.prop("test_home", "swarm_requests")) > 0


@pytest.mark.parametrize(
    "args",
    [(), ("-n", "2"), ("--swarm-junit=schema",)],
    ids=["one-process", "xdist", "explicit"],
)
def test_the_default_layout_validates_and_keeps_the_figures(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_j=TESTS)
    run = swarm_pytest(*args)
    run.result.assert_outcomes(passed=2, failed=1)
    xmlschema.XMLSchema(str(XSD)).validate(str(_junit(pytester)))
    assert run.junit is not None
    home = run.testcase("test_home")
    assert home.find("properties") is None
    out = "".join(e.text or "" for e in home.iter("system-out"))
    assert "test_home: 2 users" in out and "swarm_requests=" in out
    suite = {p.get("name"): p.get("value") for p in run.junit.iter("property")}
    requests = int(suite["test_j.py::test_home::swarm_requests"])
    assert requests > 0 and f"swarm_requests={requests}" in out
    assert "test_j.py::test_scripted::swarm_requests" in suite
    # The failure's message starts with why.
    assert run.message("test_missing").startswith("MISSED failures = 0 (measured 3); 3 x")
