"""Plain requests: echo, status codes, headers, a slow page, app exceptions."""
import json
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"method": environ["REQUEST_METHOD"], "query": environ["QUERY_STRING"],
                            "body": body.decode(), "len": environ.get("CONTENT_LENGTH")}).encode()]
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nothing here"]
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or "0.3"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow done"]
    if path == "/raise-before":
        raise ValueError("boom before start_response")
    if path == "/raise-iter":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            yield b"first-chunk;"
            raise ValueError("boom while iterating")
        return gen()
    if path == "/chunks":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"bb", b"ccc"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Path", path)])
    return [b"hello " + path.encode()]
