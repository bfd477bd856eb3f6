"""Reports: appendices, charts and the generated blocks inside ADRs."""

from __future__ import annotations
