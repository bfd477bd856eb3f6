"""adrbench: Architecture Decision Records whose evidence is a benchmark run.

Data flows one way: ``scenario`` -> ``runner`` (one process each) -> ``worker`` -> ``results``
-> decisions (``adr``, ``facts``, ``expressions``, ``verdicts``) -> ``render`` and ``gate``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
