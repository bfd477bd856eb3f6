"""The engine: scenarios and suites, one isolated worker process per
scenario, training and measurement."""

from __future__ import annotations
