"""The regression gate: rules judged against a baseline."""

from __future__ import annotations
