"""A backend of scenarios/cluster_failover.py: says which node served the request."""

import uwsgi


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served by " + uwsgi.hostname + b" for " + environ.get("HTTP_HOST", "").encode()]
