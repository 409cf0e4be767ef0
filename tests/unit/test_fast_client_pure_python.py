"""test_fast_client again, on the pure-Python parser callbacks (see pure_python_parse)."""

from pure_python_parse import _pure_python_parse  # noqa: F401  (autouse)
from test_fast_client import *  # noqa: F403  (every test of the module, collected again here)
