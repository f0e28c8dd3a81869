"""A node of scenarios/cluster_rpc.py: serves a price by RPC, and asks the pricing
node for one."""

import time

import uwsgi


def price(item):
    return b"%s costs 9.99 at %d" % (item, int(time.time()))


uwsgi.register_rpc("price", price)


def application(environ, start_response):
    item = environ.get("QUERY_STRING", "").partition("=")[2].encode()
    answer = uwsgi.rpc("10.0.0.20:3031", b"price", item)
    start_response("200 OK" if answer else "503 Service Unavailable", [])
    return [answer or b"pricing is unreachable"]
