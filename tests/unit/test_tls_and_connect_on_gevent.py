"""test_tls_and_connect again, on gevent's cooperative sockets (a run's sockets): a connect in
flight waits on its socket's own write watcher and the hub's bounds (``connect._wait_connected``)
instead of a poll object (see gevent_sockets)."""

from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse)
from test_tls_and_connect import *  # noqa: F403  (every test of the module, collected again here)
