"""Default limits shared by the clients and the options (kept import-light on purpose)."""

from __future__ import annotations

# Every request has a finite timeout: a hanging target must not hang the run.
DEFAULT_TIMEOUT = 30.0
# Bodies above this are a failure and are not kept in memory.
DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_STOP_TIMEOUT = 5.0
DEFAULT_REPORT_INTERVAL = 1.0
DEFAULT_DURATION = 10.0
