"""Counts app imports per process kind (lazy-apps imports the app in every worker)."""
import json

import uwsgi

IMPORTED_IN = "worker" if uwsgi.worker_id() else "master"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"imported_in": IMPORTED_IN, "numproc": uwsgi.numproc}).encode()]
