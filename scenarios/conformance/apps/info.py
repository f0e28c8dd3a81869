"""Process information that does not depend on which worker answers."""
import json

import uwsgi


def _info():
    workers = uwsgi.workers()
    return {
        "numproc": uwsgi.numproc,
        "worker_ok": 1 <= uwsgi.worker_id() <= uwsgi.numproc,
        "mule_id": uwsgi.mule_id(),
        "masterpid_set": uwsgi.masterpid() > 0,
        "workers": [(w["id"], w["status"] in (b"idle", b"busy"),
                     type(w["pid"]).__name__) for w in workers],
        "worker_keys": list(workers[0].keys()),
        "version": uwsgi.version.decode(),
        "version_info": list(uwsgi.version_info),
        "is_a_reload": uwsgi.is_a_reload,
        "has_threads": uwsgi.has_threads,
        "cores": uwsgi.cores,
        "buffer_size": uwsgi.buffer_size,
        "i_am_the_spooler": uwsgi.i_am_the_spooler(),
        "total_requests_type": type(uwsgi.total_requests()).__name__,
    }


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(_info(), sort_keys=True, default=repr).encode()]
