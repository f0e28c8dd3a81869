"""The core: virtual time and the event kernel. Nothing here knows of uWSGI.

``kernel`` (events, processes as greenlets, one seeded RNG, ties broken by sequence
numbers), ``clock`` (virtual time and the patch of ``time``/``datetime``), ``trace``
(the records a run leaves, spilled to disk by ``_spool``) and ``isolation`` (what a
simulation imports stays in it).
"""
