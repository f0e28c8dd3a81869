"""The server model: one uWSGI instance as 2.0.30 runs it.

Options (``config``, ``_uwsgi_options``, ``options_status``), the master and its
loop (``master``: spawn, respawn, harakiri, reload, max-requests; ``cheaper``),
the virtual processes (``processes``, ``containment``, ``_vfork``), workers and
their requests (``workers``, ``reqlog``), app loading (``apps``, ``startup``), the
log (``logsink``, ``banner``) and the ``uwsgi`` module the app imports (``facade``).
Subsystems see the instance through ``interface``, never through ``master``.
"""
