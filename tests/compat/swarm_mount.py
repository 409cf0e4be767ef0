"""A pytest plugin for requests' own test suite: every ``requests.Session`` (and so every
``requests.get``) sends through pytest-swarm's ``FastTransportAdapter`` instead of urllib3.

Loaded with ``-p swarm_mount`` by ``run_requests_suite.sh``; not a test module of this project.
"""

from __future__ import annotations

from typing import Any

import requests

from pytest_swarm.clients.transport import FastTransportAdapter

_original_init = requests.Session.__init__


def _mounted_init(self: requests.Session, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    adapter = FastTransportAdapter()
    self.mount("http://", adapter)
    self.mount("https://", adapter)


requests.Session.__init__ = _mounted_init  # type: ignore[method-assign]
