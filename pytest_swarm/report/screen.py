"""Printing a load test's summary through pytest's terminal writer, coloured line by line.

The summary's text travels as a report section (through xdist too) and is the same in JUnit
and the JSON; only here, where it reaches the terminal, do its lines get pytest's markup
(:func:`~pytest_swarm.report.terminal.line_markup`): the writer applies it when its markup is
on (a TTY or ``--color=yes``), never with ``--color=no`` or in a file.

Example:
    >>> import io
    >>> from types import SimpleNamespace
    >>> from _pytest._io import TerminalWriter
    >>> out = io.StringIO()
    >>> tw = TerminalWriter(out); tw.hasmarkup = True
    >>> reporter = SimpleNamespace(write_line=lambda line, **markup: tw.line(line, **markup))
    >>> print_summary(reporter, "Objectives:\\n  MISSED  p95 < 1ms  measured 3ms")
    >>> out.getvalue().splitlines()
    ['', 'Objectives:', '\\x1b[31m\\x1b[1m  MISSED  p95 < 1ms  measured 3ms\\x1b[0m']
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from .terminal import line_markup

__all__ = ["print_summary", "summary_printer"]


def print_summary(reporter: Any, text: str) -> None:
    """``text`` after a blank line (the test's progress character is on the current line),
    each line with its markup, through ``reporter.write_line`` (pytest's TerminalReporter)."""
    reporter.write_line("")
    for line in text.splitlines():
        reporter.write_line(line, **line_markup(line))


def summary_printer(config: Any) -> Callable[[str], None] | None:
    """``print(text)`` for the summaries of one process or the xdist controller (main thread):
    capture suspended while it writes; ``None`` without a terminal (``-p no:terminal``)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(text: str) -> None:
        guard = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with guard:
            print_summary(reporter, text)

    return write
