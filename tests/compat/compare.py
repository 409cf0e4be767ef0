"""Compare two JUnit files of requests' suite (urllib3, then FastTransportAdapter).

Prints each test that passed with urllib3 and not with the transport, marked as expected
(listed in the expected-differences file, with its reason) or NEW, and each listed test that no
longer differs (FIXED: the list must say what is true); exits 1 if any is new or fixed.

    python compare.py urllib3.xml fast.xml expected_differences.txt
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def outcomes(path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        found[name] = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
    return found


def expected(path: str) -> dict[str, str]:
    reasons: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition("  ")
                reasons[name.strip()] = reason.strip()
    return reasons


def main(plain_xml: str, fast_xml: str, expected_txt: str) -> int:
    plain, fast, reasons = outcomes(plain_xml), outcomes(fast_xml), expected(expected_txt)
    new = 0
    for name in sorted(plain):
        if plain[name] == "passed" and fast.get(name) != "passed":
            if name in reasons:
                print(f"expected  {name}: {reasons[name]}")
            else:
                print(f"NEW       {name} ({fast.get(name, 'missing')})")
                new += 1
    fixed = 0
    for name in sorted(reasons):
        if plain.get(name) == "passed" and fast.get(name) == "passed":
            print(f"FIXED     {name}: passes now, remove it from the expected differences")
            fixed += 1
        elif name not in plain:
            print(f"FIXED     {name}: not in the urllib3 run (renamed?), remove or rename it")
            fixed += 1
    passed = sum(1 for outcome in fast.values() if outcome == "passed")
    failed = sum(1 for outcome in fast.values() if outcome in ("failure", "error"))
    print(f"transport: {passed} passed, {failed} failed of {len(fast)}")
    print(f"{new} new difference(s), {fixed} listed difference(s) gone")
    return 1 if new or fixed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
