"""What the simulation does with each of uWSGI 2.0.30's 942 options.

Every option of ``_uwsgi_options.OPTIONS`` has one status:

* ``simulated``: the simulator implements what the option does (the note says how far);
* ``no-effect``: the option changes nothing a simulation can show, by nature (the note
  says why: e.g. ``--cpu-affinity`` pins OS processes to CPUs, and virtual processes
  have neither);
* ``not-simulated``: real uWSGI would act on it, the simulation does not.

A simulation given a ``not-simulated`` option logs one warning at start naming them
(and records it in the trace); ``Simulation(..., strict=True)`` refuses them instead
(``OptionNotSimulatedError``). ``simuwsgi options`` prints this table.

An alias has the status of the option it is an alias of (``workers`` = ``processes``).
Keep this table truthful: a name goes into ``SIMULATED`` only with the code that reads
it (``tests/test_options_status.py`` checks that every simulated name is read somewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import OptionNotSimulatedError
from ._uwsgi_options import ALIASES, OPTIONS, SSL_OPTIONS

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["STATUSES", "OptionStatus", "format_table", "not_simulated",
           "report_not_simulated", "status", "table"]

STATUSES = ("simulated", "no-effect", "not-simulated")

#: canonical name -> what the simulation does with it
SIMULATED: dict[str, str] = {
    # sockets: the listen addresses (SERVER_NAME/PORT, uwsgi.sockets, simuwsgi serve)
    "socket": "the request environ and uwsgi.sockets; simuwsgi serve listens on it",
    "uwsgi-socket": "as --socket",
    "http-socket": "the request environ and uwsgi.sockets; simuwsgi serve listens on it",
    "http11-socket": "as --http-socket",
    "listen": "the accept queue: connections wait while every core is busy (none is "
              "refused: the kernel makes clients retry); the master's once-a-second "
              "'listen queue ... full' line, counting --listen + 1 at most",
    "threads": "N cores per worker, each running a request at the same time (the free "
               "cores take turns in accept); uwsgi.cores, request_id() per core, "
               "wsgi.multithread, no uwsgi.env, the log line's core, threading.local and "
               "get_ident per core; fork mode runs a worker's cores one at a time",
    "enable-threads": "Python threads are on, with or without it, as in pyuwsgi 2.0.30 "
                      "('python threads support enabled', uwsgi.has_threads); threads "
                      "the app starts are virtual threads of their process",
    "thunder-lock": "accept serialized between the workers: the idle worker that has "
                    "waited longest takes the next connection (round robin), where "
                    "without it the seeded RNG picks one",
    # chunked request bodies (uwsgi.chunked_read, core/chunked.c)
    "chunked-input-limit": "the largest chunk uwsgi.chunked_read() accepts",
    "chunked-input-timeout": "how long uwsgi.chunked_read() waits for a chunk",
    # WebSockets (uwsgi.websocket_*, core/websockets.c; the handshake needs ssl=True)
    "websockets-ping-freq": "how often websocket_recv pings the client",
    "websockets-pong-tolerance": "how long websocket_recv waits for the client's pong",
    "websockets-max-size": "the largest message websocket_recv accepts (KiB)",
    # processes and their lifecycle
    "master": "the master process, its loop, respawns",
    "processes": "the number of workers; 0 is the no-workers mode; negative refused",
    "lazy-apps": "each worker imports the app after fork",
    "py-call-uwsgi-fork-hooks": "the app's os.register_at_fork hooks run around each "
                                "worker's fork (before and after_in_parent in the master, "
                                "after_in_child in the worker, worker_id() still 0); a "
                                "mule gets a Segmentation Fault as it starts, as in "
                                "2.0.30 (observed)",
    "ignore-sigpipe": "a worker ignores SIGPIPE instead of logging 'SIGPIPE: writing "
                      "to a closed pipe/socket/fd ...'",
    "ignore-write-errors": "a failed write logs no uwsgi_req_error line (the write error "
                           "still counts, and the app still gets 'write error')",
    "add-header": "each line added to every response's headers as they go out, after the "
                  "app's (core/writer.c); a response without start_response gets none",
    "offload-threads": "each worker logs 'spawned N offload threads for uWSGI worker K' as "
                       "it starts; a transfer they would take (a static file, sendfile) "
                       "takes no virtual time either way",
    "py-auto-reload": "each worker looks at its modules' files every N seconds; a changed "
                      "one is logged and gracefully reloads the instance (stdlib and "
                      "simulator modules not looked at)",
    "py-auto-reload-ignore": "a module the --py-auto-reload looks skip",
    "exec-asap": "'running \"CMD\" (asap)...' before the banner; the command runs on the "
                 "host with cron_commands=True (its output logged; a failure ends the start "
                 "with status 1), else it is only recorded",
    "exec-pre-app": "'running \"CMD\" (pre app)...' before the app loads (in each worker "
                    "under --lazy-apps); run as --exec-asap's",
    "exec-post-app": "'running \"CMD\" (post app)...' after the app loaded; run as "
                     "--exec-asap's",
    "exec-pre-jail": "'running \"CMD\" (pre-jail)...' after the binary path line (not "
                     "at a reload); run as --exec-asap's",
    "exec-in-jail": "'running \"CMD\" (in-jail)...' after the pre-jail ones; run as "
                    "--exec-asap's",
    "exec-post-jail": "never runs, as on a server without a jail (no --chroot/namespaces)",
    "exec-as-root": "only as root (machine='host' run by root): 'running \"CMD\" (as "
                    "root)...' at each of uWSGI's four privilege checks (the first only "
                    "with --uid); run as --exec-asap's",
    "exec-as-user": "as --exec-as-root's, after the root warning: 'running \"CMD\" (as "
                    "uid: U gid: G) ...'",
    "exec-as-user-atexit": "'running \"CMD\" (as uid: U gid: G) ...' as the master exits "
                           "(after 'goodbye to uWSGI.') and before a binary reload; a "
                           "failure is only logged",
    # hooks (core/hooks.c, server/hooks.py): 'running "action:args" (PHASE)...', then the
    # action: chdir, putenv (as --env), print/log, exit, unix_signal (kill_them_all,
    # gracefully_kill_them_all, grace_them_all, reap_them_all, stats), the file actions
    # on this machine's files, exec/safeexec as --exec-*; call* only fail as uWSGI does
    "hook-asap": "the actions before the banner (before --exec-asap); a failure exits 1",
    "hook-pre-jail": "after the binary path line, first start only; a failure exits 1",
    "hook-in-jail": "after the pre-jail hooks; a failure exits 1",
    "hook-post-jail": "never runs, as on a server without a jail (no --chroot/namespaces)",
    "hook-as-root": "only as root (machine='host' run by root), at each of uWSGI's four "
                    "privilege checks (the first only with --uid)",
    "hook-as-user": "as --hook-as-root's, after the root warning",
    "hook-as-user-atexit": "as the master exits (after 'goodbye to uWSGI.') and before a "
                           "binary reload; not fatal",
    "hook-pre-app": "before the app loads (in each worker under --lazy-apps); a failure "
                    "stops the instance as SIGINT does",
    "hook-post-app": "after the app loaded, as --hook-pre-app's",
    "hook-post-fork": "in each worker as it starts; a failure SIGINTs the master",
    "hook-accepting": "in each worker before it accepts; a failure SIGINTs the master",
    "hook-accepting1": "as --hook-accepting's, in worker 1 only",
    "hook-accepting-once": "as --hook-accepting's, at a worker's first spawn only",
    "hook-accepting1-once": "as --hook-accepting's, worker 1's first spawn only",
    "hook-master-start": "in the master after the fork, its signal handlers set (so "
                         "unix_signal:15 gracefully_kill_them_all replaces SIGTERM's); a "
                         "failure stops the instance as SIGINT does",
    "hook-touch": "'FILE action:args': the master's check runs the hook when FILE is "
                  "touched (after the other --touch-* checks); not fatal",
    "log-maxsize": "once a second the master rotates the --logto file above N bytes "
                   "(FILE.<virtual unix time>, or --log-backupname), with uWSGI's line",
    "touch-logrotate": "the --logto file rotated (as by --log-maxsize) when the file is "
                       "touched, at the master's once-a-second look",
    "touch-logreopen": "uWSGI's two log-reopen lines in the log when the file is touched",
    "log-backupname": "the name --log-maxsize rotates the --logto file to",
    "daemonize": "the log goes to the file, as --logto's, and the umask is 0 unless "
                 "--umask says (uWSGI also leaves its terminal; a simulation has none)",
    "umask": "the processes' umask (the test process's while the simulation runs, put "
             "back at close); an invalid value is logged and taken as 0, as in 2.0.30",
    "logto2": "as --logto, the file opened after the privileges drop: the first lines "
              "(up to the root warnings) are not in it, as observed",
    "log-master": "the log's lines are the same; the master's log pipes take fds 3-5, so "
                  "the sockets start at fd 6 (8 with a request logger), as observed",
    "threaded-logger": "as --log-master (a thread of the master writes the log: the same "
                       "lines)",
    "rem-header": "no response gets a header of that name (any case), the app's or "
                  "uWSGI's (core/writer.c uwsgi_response_add_header)",
    "route": "internal routing on PATH_INFO (simuwsgi/server/routing.py: the actions, "
             "conditions and route vars it simulates; any other is said not simulated)",
    "route-host": "internal routing on HTTP_HOST (see --route)",
    "route-uri": "internal routing on REQUEST_URI (see --route)",
    "route-qs": "internal routing on QUERY_STRING (see --route)",
    "route-remote-addr": "internal routing on REMOTE_ADDR (see --route)",
    "route-user-agent": "internal routing on HTTP_USER_AGENT (see --route)",
    "route-remote-user": "internal routing on REMOTE_USER (see --route)",
    "route-referer": "internal routing on HTTP_REFERER (see --route)",
    "route-label": "a goto target of the internal routing (see --route)",
    "route-if": "internal routing on a condition (see --route)",
    "route-if-not": "internal routing on a negated condition (see --route)",
    "route-run": "an internal routing action for every request (see --route)",
    # the other tables: the same rules, plus -status (see simuwsgi/server/routing.py)
    **{f"{table}-route{suffix}": f"{what}; " + ("a rule on the response's status number"
                                                 if suffix == "-status"
                                                 else f"see --route{suffix}")
       for table, what in (
           ("error", "the error routing table: applied as each response's status is "
                     "prepared (a rule that answers replaces the app's response)"),
           ("response", "the response routing table: applied once as the response's "
                        "headers go out"),
           ("final", "the final routing table: applied once the response is written, "
                     "before the log line (actions that would write are not simulated)"))
       for suffix in ("", "-status", "-host", "-uri", "-qs", "-remote-addr",
                      "-user-agent", "-remote-user", "-referer", "-label", "-if",
                      "-if-not", "-run")},
    "vacuum": "the master removes the --pidfile/--pidfile2 files as it exits, with "
              "uWSGI's lines (a simulation creates no UNIX socket file to remove)",
    "pidfile": "the file gets the master's virtual pid (uWSGI's line at start; not "
               "rewritten at a reload); an unwritable one ends the start as uWSGI's exit(1)",
    "pidfile2": "as --pidfile, written after the privileges drop (its line later)",
    "wsgi-env-behaviour": "cheat (the default): one environ dict per core and app, "
                          "cleared after each request and refilled by the next; holy: a "
                          "new one per request; another value ends the start",
    "write-errors-tolerance": "a response goes on, the write callable and uwsgi.sendfile "
                              "raise nothing, until more writes than this failed",
    "disable-write-exception": "a failed write raises nothing in the app and logs no "
                               "'OSError: write error' (the exception still counts, and "
                               "the response still ends)",
    "write-errors-exception-only": "with --ignore-sigpipe and --ignore-write-errors; a "
                                   "failed write leaves OSError('write error') pending "
                                   "and the response goes on: the app's generator fails "
                                   "with CPython's SystemError at its next C call, as in "
                                   "2.0.30 (observed)",
    "skip-atexit": "SIGINT/SIGTERM end a worker, mule or spooler with _exit(): neither "
                   "uwsgi.atexit nor the atexit handlers run",
    "skip-atexit-teardown": "no Py_Finalize at a process's exit: uwsgi.atexit runs, the "
                            "atexit module's handlers do not",
    "py-call-osafterfork": "the app's os.register_at_fork after_in_child hooks run in "
                           "each forked process's post-fork",
    "lazy": "as --lazy-apps",
    "harakiri": "workers killed at the deadline, with the HARAKIRI log lines",
    "harakiri-graceful-timeout": "the first harakiri attempt sends the graceful signal "
                                 "and the next one, that many seconds later, SIGKILL",
    "harakiri-graceful-signal": "the signal of the graceful harakiri attempt (15)",
    "harakiri-no-arh": "harakiri is left before uwsgi.after_req_hook runs (without it, a "
                       "hook slower than --harakiri is killed by it)",
    "harakiri-verbose": "the worker's /proc syscall and wchan lines after '*** HARAKIRI "
                        "ON WORKER': for time.sleep, a request body read and a stuck "
                        "worker, addresses as 0x0 (none for other waits: deviations.md)",
    # exceptions in requests (simuwsgi/server/exceptions.py)
    "catch-exceptions": "an exception in the app's call or its response iterator, with "
                        "nothing sent yet, answers 500 text/plain with uWSGI's report "
                        "(exception, class, message, backtrace, the request's vars)",
    "reload-on-exception": "the worker exits (status 5) in the request after an "
                           "exception (the caught 500 sent first; no request log line) "
                           "and is respawned ('... monitored exception detected ...')",
    "reload-on-exception-type": "as --reload-on-exception when the exception's message "
                                "(str(exc)) equals it: 2.0.30 compares the message, not "
                                "the type (observed)",
    "reload-on-exception-value": "as --reload-on-exception when str(exc) equals it",
    "reload-on-exception-repr": "as --reload-on-exception when the exception's message "
                                "(str(exc)) equals it: 2.0.30 compares the message, not "
                                "the repr (observed)",
    "exception-handler": "refused at start as by pyuwsgi, which has no exception handler "
                         "('unable to find exception handler: NAME', exit 1)",
    "memory-report": "each request end publishes the worker's memory (sim.set_rss) and "
                     "its log line starts with it",
    "stats": "the stats server: sim.stats() is its document; simuwsgi serve answers on "
             "the address",
    "stats-http": "the stats document after an HTTP/1.0 head, once the client sent something",
    "stats-minified": "the stats document without whitespace",
    "stats-no-cores": "no cores list in the stats document",
    "stats-no-metrics": "no metrics in the stats document",
    "check-interval": "the master's checks (harakiri, deaths, touches, cheaper, idle, "
                      "mercy) every N seconds",
    "max-requests": "workers recycled after N requests",
    "min-worker-lifetime": "the minimum life before --max-requests recycles a worker",
    "cheaper": "only --cheaper-initial workers at start; the algorithm spawns and stops "
               "them once a second",
    "cheaper-initial": "the workers spawned at start",
    "cheaper-step": "how many cheaped workers an overload spawns",
    "cheaper-overload": "the spare/backlog threshold",
    "cheaper-algo": "spare, backlog, busyness, manual",
    "cheaper-algo-list": "the list of pyuwsgi's algorithms before the banner",
    "cheaper-rss-limit-soft": "no worker spawned while the workers' published RSS "
                              "(sim.set_rss) is over it; needs --memory-report, as real",
    "cheaper-rss-limit-hard": "a worker stopped at each check while the workers' RSS is "
                              "over it",
    "cheaper-busyness-max": "busyness: the average above which workers are spawned (50)",
    "cheaper-busyness-min": "busyness: the average below which one is stopped (25)",
    "cheaper-busyness-multiplier": "busyness: overload * multiplier idle seconds before a "
                                   "worker is stopped (10)",
    "cheaper-busyness-penalty": "busyness: added to the multiplier when workers come back "
                                "too fast (2)",
    "cheaper-busyness-verbose": "busyness: the per-check log lines",
    "cheaper-busyness-backlog-alert": "busyness: a listen queue above it spawns emergency "
                                      "workers (33)",
    "cheaper-busyness-backlog-multiplier": "busyness: emergency workers are stopped after "
                                           "overload * it seconds (3)",
    "cheaper-busyness-backlog-step": "busyness: emergency workers spawned at a time (1)",
    "cheaper-busyness-backlog-nonzero": "busyness: a listen queue never empty for that "
                                        "long spawns emergency workers (60)",
    "cheap": "no worker until the first connection",
    "idle": "no request for that long stops the workers (cheap mode) until the next "
            "connection",
    "die-on-idle": "with --idle, the instance shuts down instead",
    "max-worker-lifetime": "the worker leaves after its request once it lived longer; "
                           "not above --min-worker-lifetime is refused, as real",
    "max-worker-lifetime-delta": "worker N's lifetime is max + (N - 1) * delta",
    "max-requests-delta": "worker N's limit is max-requests + (N - 1) * delta",
    "reload-on-rss": "a worker over the limit after a request exits (sim.set_rss)",
    "reload-on-as": "a worker over the limit after a request exits (sim.set_rss(vsz=))",
    "evil-reload-on-rss": "the master kills a worker whose published rss is over the "
                          "limit (sim.set_rss)",
    "evil-reload-on-as": "as --evil-reload-on-rss, for the address space",
    "mem-collector-freq": "how often a worker publishes its memory under --evil-reload-on-*",
    "forkbomb-delay": "the master's pause after too many respawns in a second",
    "die-on-term": "SIGQUIT (uwsgi.stop(), os.kill, simuwsgi serve) is a brutal reload "
                   "and SIGTERM a stop: the option swaps them",
    "need-app": "start fails when the app cannot be loaded",
    "honour-stdin": "the app's sys.stdin is the test's; without it an empty stream, as "
                    "uWSGI remaps fd 0 to /dev/null (sim mode; a fork mode child's fd 0 "
                    "is /dev/null)",
    "worker-reload-mercy": "a worker still busy that long after a graceful reload (or "
                           "--touch-workers-reload) is killed, with the NO MERCY line",
    "mule-reload-mercy": "a mule still alive that long after its curse (reload, "
                         "--touch-mules-reload) is killed, with the NO MERCY line",
    "exit-on-reload": "a reload ends the instance ('uWSGI: GAME OVER (insert coin)')",
    "touch-reload": "a graceful reload when the file changes (sim.touch or the filesystem)",
    "touch-workers-reload": "each worker finishes its request and is respawned",
    "touch-mules-reload": "the mules are cursed with SIGHUP and respawned",
    "touch-spoolers-reload": "the spoolers ignore SIGHUP: killed at the next check (NO "
                             "MERCY lines) and respawned",
    "touch-exec": "the command is recorded (touch.exec); run on the host only with "
                  "cron_commands=True",
    "touch-chain-reload": "a chain reload: one worker at a time, each once the one before "
                          "is respawned, with 2.0.30's lines",
    "touch-signal": "the signal is raised when the file changes",
    # the app
    "wsgi-file": "the app file, imported as uWSGI names it",
    "module": "the app module (pkg.mod[:callable])",
    "callable": "the WSGI callable's name",
    "import": "modules imported after the app",
    "shared-import": "modules imported before the app, in every process",
    "chdir2": "each worker's directory, changed as it starts; a missing directory makes "
              "the worker exit and be respawned, as real",
    "env": "set in os.environ while the simulation runs, as the compiled uwsgi binary "
           "does (pyuwsgi's os.environ does not see it)",
    "unenv": "removed from os.environ while the simulation runs (pyuwsgi: as --env)",
    **dict.fromkeys(("pythonpath", "python-path", "pp"),
                    "first in sys.path (globs expanded), with the 'added X to pythonpath.' "
                    "line"),
    "chdir": "the app directory; a missing directory is refused at start, as real",
    "mount": "apps mounted on a SCRIPT_NAME (file.py/.wsgi or module:callable), the "
             "first on '' or '/...' the default app, with 2.0.30's lines; one interpreter "
             "for all (uWSGI gives each mount its own)",
    "manage-script-name": "the longest mountpoint prefixing PATH_INFO becomes SCRIPT_NAME",
    **dict.fromkeys(("pyrun", "python", "py"),
                    "command mode: worker 1 runs the file as __main__, then the instance "
                    "ends"),
    # static files (static.py)
    "check-static": "files under the directory served by the worker, as core/static.c",
    "check-static-docroot": "files under DOCUMENT_ROOT served by the worker",
    "static-check": "as --check-static",
    "static-map": "files under MOUNT served from the directory (or the file)",
    "static-map2": "as --static-map, the whole PATH_INFO appended to the directory",
    "static-index": "the index file served for a directory",
    "static-skip-ext": "those endings are never served as static files",
    "static-safe": "real paths under it pass the security check",
    **dict.fromkeys(("static-expires", "static-expires-mtime", "static-expires-path-info",
                     "static-expires-path-info-mtime", "static-expires-uri",
                     "static-expires-uri-mtime", "static-expires-type",
                     "static-expires-type-mtime"),
                    "the Expires header of a static file (virtual time)"),
    "mimefile": "the mime types file read at start (default /etc/mime.types)",
    "honour-range": "a static file's Range: 206, or 416 (as 2.0.30, static files only)",
    "static-gzip-all": "a static file's .br/.gz sibling served to a client accepting it",
    **dict.fromkeys(("static-gzip", "static-gzip-dir", "static-gzip-ext"),
                    "as --static-gzip-all, for the files matching it"),
    "file-serve-mode": "x-sendfile/nginx: a static file is answered with its header",
    "fileserve-mode": "as --file-serve-mode",
    # request limits on every request (reading.py; simuwsgi serve's sockets too)
    "buffer-size": "a request head (--http-socket) or packet (--socket) beyond it is "
                   "refused, a var beyond it dropped, as real",
    "max-vars": "more than 2 x N vars: 'max vec size reached', a 500 without a byte",
    "limit-post": "a bigger Content-Length: 'Invalid (too big) CONTENT_LENGTH', a 500",
    "post-buffering": "the body is read before the app runs (a slow client times out "
                      "there)",
    "socket-timeout": "every wait for a slow client (submit(body_chunks=, pace=))",
    **dict.fromkeys(("plugins", "plugin"),
                    "logged as pyuwsgi logs a plugin it cannot load (it has none to load), "
                    "and ignored as real"),
    **dict.fromkeys(("need-plugin", "need-plugins"),
                    "refused at start as real: pyuwsgi loads no plugin"),
    # subsystems
    "cache": "the 1.x default cache", "cache2": "named caches",
    "cache-blocksize": "the default cache's block size",
    "cache-no-expire": "no sweeper", "cache-expire-freq": "the sweeper's period",
    "cache-report-freed-items": "the sweeper's log lines",
    "cron": "cron tasks (recorded; run with cron_commands=True)",
    "cron2": "cron2 tasks", "unique-cron": "unique cron tasks",
    "signal-timer": "signal timers", "signal-rbtimer": "red-black signal timers",
    "mule": "mules (default loop or a script)", "mules": "N default mules",
    "farm": "mule farms", "mule-msg-size": "the mule queues' buffer size",
    "mule-harakiri": "mule harakiri",
    "spooler": "spooler directories and processes",
    "spooler-external": "external spooler directories",
    "spooler-ordered": "ordered scanning", "spooler-chdir": "chdir before each task",
    "spooler-processes": "processes per spooler directory",
    "spooler-quiet": "no per-task log lines", "spooler-max-tasks": "recycle after N tasks",
    "spooler-harakiri": "spooler harakiri", "spooler-frequency": "the scan period",
    "spooler-import": "modules imported by spoolers",
    "locks": "user locks", "sharedarea": "shared areas", "py-sharedarea": "shared areas",
    "queue": "the uWSGI queue", "queue-blocksize": "the queue's block size",
    "enable-metrics": "the metrics subsystem", "metric": "user metrics",
    "metrics-no-cores": "no per-core metrics", "snmp": "the SNMP value slots",
    "rpc-max": "the RPC function table's size",
    # the option language
    "ini": "ini files, sections", "set": "options and placeholders",
    "set-placeholder": "placeholders",
    "strict": "an unknown key in a config file is refused instead of being a placeholder",
    **dict.fromkeys(("if-env", "if-not-env", "if-opt", "if-not-opt", "if-exists",
                      "if-not-exists", "if-file", "if-not-file", "if-dir", "if-not-dir",
                      "if-plugin", "if-not-plugin"),
                     "a block of options up to endif, kept when the test holds "
                     "(%(_) is the tested value), as core/config.c"),
    **dict.fromkeys(("if-reload", "if-not-reload"),
                    "a block of options up to endif, as on a first start: the simulation "
                    "does not read its options again at a reload"),
    **dict.fromkeys(("for", "for-times", "for-readline", "for-glob"),
                    "a block of options up to endfor, repeated with %(_) for each item"),
    **dict.fromkeys(("endif", "end-if", "endfor", "end-for"), "ends an if-*/for block"),
    "include": "a configuration file read where it appears, by its name's ending (.ini, "
               ".yaml/.yml, .json/.js, .xml)",
    "inherit": "a configuration file (as --include) read once every option is read (its "
               "values come last and are not expanded)",
    **dict.fromkeys(("yaml", "yml"), "YAML files as uWSGI's own line reader reads them "
                    "(FILE:section), see simuwsgi/server/configfiles.py"),
    **dict.fromkeys(("json", "js"), "JSON files as the jansson build reads them "
                    "(FILE:object; a real, an object or a nested array is skipped, and "
                    "said), see simuwsgi/server/configfiles.py"),
    **dict.fromkeys(("xml", "xmlconfig"), "XML files as the expat build reads them "
                    "(FILE:id), see simuwsgi/server/configfiles.py"),
    "print": "the value written out at start (in the log)",
    "max-fd": "the descriptor limit the banner logs (above the simulated machine's hard "
              "limit, 524288, uWSGI's setrlimit() error unless root); the test process "
              "keeps its own",
    "master-fifo": "a real fifo the master reads a command byte from at each wake-up "
                   "(r R q Q w W c s C + - l L P S B E, 0-9 slots), as core/fifo.c; p and f "
                   "are said not simulated; bytes the scenario wrote are read when the "
                   "simulation runs again",
    "show-config": "the exported options as an ini block before the banner (the master's "
                   "SIGUSR1 dump shows the same block)",
    "iprint": "the value written out at start (in the log)",
    "exit": "start refused with the given exit status",
    # logging (reqlog.py, logsink.py)
    "disable-logging": "request log lines are not written unless a --log-* condition or "
                       "uwsgi.log_this_request() forces one",
    **dict.fromkeys(("log-zero", "log-4xx", "log-5xx", "log-sendfile"),
                    "forces the request log line under --disable-logging, as reqlog.py says"),
    "log-slow": "forces the request log line of a request slower than N ms (virtual time)",
    "log-big": "forces the request log line of a response bigger than N bytes",
    "log-micros": "the request log line's time in microseconds",
    "log-format": "the request log line's format, every 2.0.30 variable",
    "logformat-strftime": "%(ftime) formatted with --log-date's format",
    **dict.fromkeys(("log-date", "logdate"),
                    "the date prefix on uWSGI's own lines (strftime format when given)"),
    "log-prefix": "the prefix on uWSGI's own lines",
    "logto": "the log written to the file too",
    "logger": "file: loggers write the file (opened at their first line; a named one "
              "gets only --log-route's lines); other loggers log a [simuwsgi] warning",
    **dict.fromkeys(("req-logger", "logger-req"),
                    "file: request loggers write the request lines to the file"),
    "log-encoder": "the chain of encoders on the master's log lines (prefix, suffix, nl, "
                   "format, json, gzip, compress; ${...} from the virtual clock; "
                   "encoder:ID for one named logger)",
    "log-req-encoder": "as --log-encoder, on the request lines of --req-logger/"
                       "--log-req-route (else request lines take --log-encoder's)",
    "log-drain": "main-log lines matching the regexp are not written (Python's re)",
    "log-filter": "only main-log lines matching one of the regexps are written",
    "log-route": "main-log lines matching the regexp go to the named logger only",
    "log-req-route": "request lines matching the regexp go to the named logger (2.0.30 "
                     "looks the name up among the --logger ones)",
    "log-master-bufsize": "a log line longer than N bytes is cut at N (8192)",
    "log-truncate": "the --logto file is emptied at start",
    "logfile-chmod": "the mode of the --logto file (file: loggers' are 0640)",
    "log-x-forwarded-for": "the request log line's address from X-Forwarded-For",
    "response-headers-limit": "the header buffer's size: a bigger header set raises "
                              "TypeError('unable to add header to the response')",
    # routers and subscriptions between a Cluster's nodes (network/_routers.py); a lone
    # Simulation logs a warning naming them (strict: refuses them)
    **dict.fromkeys(("fastrouter", "http"),
                    "a router process on a Cluster's node: sessions routed to backends "
                    "over the virtual network, retries, failure lines"),
    **dict.fromkeys(("fastrouter-to", "http-to"),
                    "static backends in turn; a failed one skipped for the gracetime"),
    **dict.fromkeys(("fastrouter-subscription-server", "http-subscription-server"),
                    "the router's subscription table (pools, wrr/lrc/wlrc, tolerance)"),
    **dict.fromkeys(("fastrouter-timeout", "http-timeout"),
                    "the router's wait for a backend's connect and reply (default 60 s)"),
    **dict.fromkeys(("fastrouter-gracetime", "http-gracetime"),
                    "how long a failed static backend is skipped (default 30 s)"),
    **dict.fromkeys(("fastrouter-buffer-size", "http-buffer-size"),
                    "the router's request head buffer"),
    **dict.fromkeys(("http-modifier1", "http-modifier2"),
                    "the modifiers of the packets the HTTP router forwards"),
    **dict.fromkeys(("subscribe-to", "subscribe2"),
                    "the master's subscription datagrams to routers on a Cluster's nodes"),
    "subscribe-freq": "master cycles between announces (one cycle a second)",
    "subscription-tolerance": "seconds without an announce before a router drops a node",
    "subscription-algo": "wrr, lrc, wlrc (anything else: wrr)",
    "weight": "the weight in subscription datagrams",
    "auto-weight": "the weight is the number of cores",
    "start-unsubscribed": "no subscription datagram is sent",
    "unsubscribe-on-graceful-reload": "a graceful reload unsubscribes first",
    "subscribe-with-modifier1": "the modifier1 in every subscription datagram",
    # process identity and signals (containment.py)
    "pyargv": "sys.argv of the app is ['uwsgi', *pyargv]",
    "binary-path": "the binary in the startup lines, the magic table (%b) and a reload's "
                   "'running' line",
}

_OS_IDENTITY = ("a simulation runs in the test process and cannot change its user, "
                "group, root or namespaces; an app that reads os.getuid() sees the "
                "test's")
_OS_TUNING = ("operating-system tuning of real processes or sockets: virtual processes "
              "and virtual connections have nothing it acts on")
_PROCTITLE = "the title of an OS process; virtual processes have none"
_LOCKS = "how uWSGI implements its locks; simulated locks behave the same whatever it is"
_REAPER = "zombie processes: virtual processes leave none"

#: canonical name -> why it has no effect in a simulation
NO_EFFECT: dict[str, str] = {
    **dict.fromkeys((
        "uid", "gid", "add-gid", "immediate-uid", "immediate-gid", "no-initgroups",
        "master-as-root", "drop-after-init", "drop-after-apps"),
        _OS_IDENTITY + " (unknown users and groups are refused, as real)"),
    **dict.fromkeys((
        "cpu-affinity", "prio", "ksm", "never-swap", "pcre-jit", "thread-stacksize",
        "ugreen-stacksize", "tcp-nodelay", "so-keepalive", "so-send-timeout",
        "socket-sndbuf", "socket-rcvbuf", "reuse-port", "tcp-fast-open",
        "tcp-fast-open-client", "freebind", "no-defer-accept", "chmod-socket",
        "chown-socket", "abstract-socket", "shutdown-sockets", "safe-fd",
        "close-on-exec", "close-on-exec2", "disable-sendfile", "use-abort"), _OS_TUNING),
    **dict.fromkeys((
        "auto-procname", "procname-prefix", "procname-prefix-spaced", "procname-append",
        "procname", "procname-master"), _PROCTITLE),
    **dict.fromkeys(("lock-engine", "ftok", "persistent-ipcsem"), _LOCKS),
    "reaper": _REAPER,
    "home": ("pyuwsgi's Python is already running ('--- Python VM already initialized "
             "---'): sys.prefix and sys.path stay its own, as observed on 2.0.30"),
    "no-orphans": "virtual processes end with the master; none is ever orphaned",
    "reload-mercy": ("2.0.30 reads it only to wait for an Emperor or attached daemons, "
                     "which a simulation has none of; worker and mule reloads are not "
                     "shortened by it (--worker-/--mule-reload-mercy)"),
    "post-buffering-bufsize": ("the size of each read() of a body buffered to disk: the "
                               "simulated body arrives in the client's chunks, whatever "
                               "the reads"),
    "single-interpreter": ("the simulation runs every app in one interpreter already "
                           "(uWSGI's multiple-interpreter mode gives each --mount app "
                           "its own)"),
}

#: canonical name -> what a user should know about a not-simulated option
NOT_SIMULATED_NOTES: dict[str, str] = {
    "http-timeout": "the --http router's timeout: the router is not simulated",
    "async": "uwsgi.cores follows it, but a worker runs one request at a time",
    "backtrace-depth": "the C backtrace after a segmentation fault is not simulated "
                       "(its frame lines: only the lines around them are logged)",
    "mode": "only uwsgi.mode is set",
    "loop": "only uwsgi.loop is set",
    **dict.fromkeys(("log-master-stream", "log-master-req-stream"),
                    "a stream log pipe merges lines as the kernel delivers them; the "
                    "simulation keeps one message per line"),
    "log-reopen": "the simulation opens the --logto file by name at each line",
    "log-ioerror": "forces the line of a request with read and write errors; the "
                   "simulation counts no read errors",
}


@dataclass(frozen=True, kw_only=True)
class OptionStatus:
    """One row of the table."""

    name: str
    status: str
    note: str = ""
    alias_of: str | None = None


#: The options of a build with SSL (``ssl=True``) that the simulation implements.
SSL_SIMULATED: dict[str, str] = {
    "legion": "announces and the Lord election on the cluster's virtual network "
              "(simuwsgi.subsystems.legion); a UNIX datagram address is refused",
    "legion-node": "where the announces go",
    "legion-mcast": "--legion plus its own address as a node (no multicast group)",
    "legion-freq": "seconds between announces",
    "legion-tolerance": "seconds of silence before a member leaves",
    "legion-skew-tolerance": "announces older than this are refused (clock skew)",
    "legion-death-on-lord-error": "a failing lord hook suspends the node",
    "legion-quorum": "votes needed to elect a Lord",
    "legion-scroll": "the scroll announced and shown by lord_scroll/scrolls",
    "legion-scroll-max-size": "the biggest Lord scroll kept",
    "legion-cron": "a command cron that runs only while the node is Lord",
    "unique-legion-cron": "as --legion-cron, unique",
    "cron-legion": "as --legion-cron",
    "unique-cron-legion": "as --unique-legion-cron",
    **{f"legion-{hook}": "hook actions: log: and signal: act, cmd:/exec:/alarm: are "
                         "recorded (legion.hook), not run"
       for hook in ("lord", "unlord", "setup", "death", "join", "node-joined",
                    "node-left")},
}


def status(name: str) -> OptionStatus:
    """The status of one option (``KeyError`` for a name uWSGI does not have); an
    option of the SSL build only has its own table (``SSL_SIMULATED``)."""
    if name in SSL_OPTIONS:
        if name in SSL_SIMULATED:
            return OptionStatus(name=name, status="simulated", note=SSL_SIMULATED[name])
        return OptionStatus(name=name, status="not-simulated",
                            note="an option of a build with SSL (ssl=True)")
    if name not in OPTIONS:
        raise KeyError(name)
    target = ALIASES.get(name, name)
    alias_of = target if target != name else None
    if target in SIMULATED:
        return OptionStatus(name=name, status="simulated", note=SIMULATED[target],
                            alias_of=alias_of)
    if target in NO_EFFECT:
        return OptionStatus(name=name, status="no-effect", note=NO_EFFECT[target],
                            alias_of=alias_of)
    return OptionStatus(name=name, status="not-simulated",
                        note=NOT_SIMULATED_NOTES.get(target, ""), alias_of=alias_of)


def table() -> list[OptionStatus]:
    """Every option, in the order of uWSGI's ``--help``."""
    return [status(name) for name in OPTIONS]


def not_simulated(names: Iterable[str]) -> list[str]:
    """The given option names whose status is ``not-simulated``, once each, in order."""
    out: list[str] = []
    for name in names:
        if (name in OPTIONS or name in SSL_OPTIONS) and name not in out \
                and status(name).status == "not-simulated":
            out.append(name)
    return out


def report_not_simulated(inst: Instance, *, strict: bool) -> None:
    """One warning line (and a trace record) naming the instance's not-simulated
    options; with ``strict``, ``OptionNotSimulatedError`` instead."""
    from .routing import gaps

    names = not_simulated(name for name, _value in inst.opts.items)
    names += gaps(inst.opts)  # what the routing rules use that is not simulated
    if not names:
        return
    listed = " ".join(f"--{name}" if name in OPTIONS or name in SSL_OPTIONS else name
                      for name in names)
    if strict:
        raise OptionNotSimulatedError(
            f"options not simulated (strict): {listed}; 'simuwsgi options NAME' says why")
    inst.log(f"*** simuwsgi WARNING: options not simulated: {listed} "
             f"('simuwsgi options NAME' says what is missing) ***")
    inst.record("options.not_simulated", None, options=names)


#: The 1.4 options of ``legacy=True`` (``simuwsgi.subsystems.legacy.LEGACY_OPTIONS``).
LEGACY_ROWS = (
    ("cluster", "simulated", "joins that multicast (ip:port) or broadcast (:port) group on "
                             "the virtual network, 1.4's packets and log lines "
                             "(simuwsgi/network/_legacy.py)"),
    ("cluster-reload", "simulated", "a client command: Cluster.send_udp(group, 98)"),
    ("cluster-log", "simulated", "a client command: Cluster.send_udp(group, 96, line)"),
    ("cluster-nodes", "simulated", "a member that only reads the group's node table "
                                   "(simuwsgi/network/_legacy.py)"),
    ("erlang", "simulated", "the C-node gateway process for a Cluster.add_erlang node's "
                            "sends and rex rpc calls (simuwsgi/network/_erlang.py)"),
    ("erlang-cookie", "simulated", "accepted and warned about: the virtual network does not "
                                   "check cookies"),
)


def format_table(rows: Iterable[OptionStatus], *, markdown: bool = False) -> str:
    """The rows as text columns, or as the Markdown of ``docs/options.md``."""
    rows = list(rows)
    if markdown:
        counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
        lines = [
            "# uWSGI 2.0.30 options in simuwsgi",
            "",
            "Generated by `simuwsgi options --markdown` from `simuwsgi/server/options_status.py`.",
            "*simulated*: the simulator implements it; *no-effect*: it changes nothing a "
            "simulation can show (the note says why); *not-simulated*: a simulation given it "
            "logs a warning at start, and `strict=True` (`simuwsgi run --strict`) refuses it.",
            "",
            ", ".join(f"{counts[s]} {s}" for s in STATUSES) + f" ({len(rows)} options).",
            "",
            "| option | status | note |",
            "|---|---|---|",
        ]
        for r in rows:
            note = (f"alias of `--{r.alias_of}`. " if r.alias_of else "") + r.note
            lines.append(f"| `--{r.name}` | {r.status} | {note.replace('|', '/')} |")
        lines += ["", "## uWSGI 1.4 options (`legacy=True` only)", "",
                  "2.0.30 refuses them (`unrecognized option`), and so does a simulation "
                  "without `legacy=True`.", "", "| option | status | note |", "|---|---|---|"]
        lines += [f"| `--{name}` | {status} | {note} |" for name, status, note in LEGACY_ROWS]
        return "\n".join(lines) + "\n"
    width = max((len(r.name) for r in rows), default=0) + 2
    out = []
    for r in rows:
        note = (f"(= --{r.alias_of}) " if r.alias_of else "") + r.note
        out.append(f"{'--' + r.name:<{width + 2}} {r.status:<13} {note}".rstrip())
    return "\n".join(out) + "\n"
