"""Decisions: ADRs, the facts they are judged on, the expression language and verdicts."""

from __future__ import annotations
