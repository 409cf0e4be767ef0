"""test_fast_client again, on gevent's cooperative sockets (a run's sockets): the fast client's own
waits instead of the sockets' blocking calls (see gevent_sockets)."""

from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse)
from test_fast_client import *  # noqa: F403  (every test of the module, collected again here)
