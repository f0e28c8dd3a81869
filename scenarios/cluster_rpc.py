"""Two nodes calling each other over the virtual network: a web node asks a pricing
node by RPC; the link is cut for a minute, then healed; the pricing node's clock is
30 s ahead.

    simuwsgi run scenarios/cluster_rpc.py
"""

NODES = {
    "web": ["--master", "--processes", "2", "--socket", ":3031", "--wsgi-file",
            "apps/cluster_web.py"],
    "pricing": {"options": ["--master", "--processes", "1", "--socket", ":3031",
                            "--wsgi-file", "apps/cluster_web.py"],
                "address": "10.0.0.20"},
}
SEED = 14


def timeline(cluster):
    web = cluster["web"]
    cluster.skew("pricing", 30)
    for second in range(0, 180, 10):
        if second == 60:
            cluster.net.partition(["web"], ["pricing"])
        if second == 120:
            cluster.net.heal()
        cluster.run_until(second)
        web.get("/price?item=42")
    cluster.run_until(180)


def check(cluster):
    statuses = [r["status"] for r in cluster["web"].trace.select("request.end")]
    assert statuses == [200] * 6 + [503] * 6 + [200] * 6, statuses
    assert [r["node"] for r in cluster.trace.select("net.call")] == ["10.0.0.20:3031"] * 18
    timeouts = cluster.trace.select("net.timeout")
    assert len(timeouts) == 6, f"{len(timeouts)} calls timed out during the partition"
    assert cluster["pricing"].trace.count("request.end") == 12
