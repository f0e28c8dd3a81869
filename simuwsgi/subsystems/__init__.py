"""uWSGI's subsystems, one module each, as 2.0.30 has them.

Signals, timers, cron, file monitors, mules and farms, the spooler, caches, locks,
the shared area, the queue, RPC, metrics, the request wire functions, the legacy
(removed) API, and the entry of the real-socket ``net`` subsystem. Each module opens
with what it models; each sees its instance through ``server.interface``.
"""
