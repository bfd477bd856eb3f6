"""The results contract: versioned run records, their store and the metric catalogue."""

from __future__ import annotations
