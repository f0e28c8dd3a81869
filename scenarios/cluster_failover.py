"""Failover behind a router: an HTTP router on 10.0.0.1 with a subscription server, and
three backends that subscribe to it. A client asks for shop.example every second.

* 0-30 s: the router spreads the requests over b1, b2, b3 (wrr, equal weights);
* 30 s: b3 is cut off from the others (a partition): the router's connection to it
  times out (``--http-timeout 5``), marks it failed and retries the request on another
  backend; b3's announces are lost meanwhile;
* 60 s: b2 is killed (``kill -9``: it cannot unsubscribe): the next connection to it
  is refused, it is marked failed and the request goes to b1;
* 90 s: the partition heals: b3's next announce (every 10 s) puts it back in the pool;
* every request is answered; the report's "Routed requests" table shows the traffic
  moving;
* the backends are a Legion (a build with SSL) with a quorum of 2: b1 (the highest
  valor) is Lord from 6 s; cut off, b3 never becomes one; after b2's death b1 alone has
  no quorum and gives the title up, then takes it back once b3 is back.

    simuwsgi run scenarios/cluster_failover.py --report reports/
"""

def legion(n):
    """Backend ``n``'s Legion options: one Legion over the three backends."""
    others = [f"shop 10.0.0.{m + 1}:4000" for m in (1, 2, 3) if m != n]
    return ["--legion", f"shop 10.0.0.{n + 1}:4000 {100 - n} aes-128-cbc:s3cret",
            *[arg for node in others for arg in ("--legion-node", node)],
            "--legion-quorum", "shop 2", "--legion-scroll", f"shop b{n}"]


def backend(n):
    return {"options": ["--master", "--processes", "2", "--socket", f"10.0.0.{n + 1}:3031",
                        "--subscribe-to", "10.0.0.1:2626:shop.example", *legion(n),
                        "--wsgi-file", "apps/cluster_backend.py"],
            "address": f"10.0.0.{n + 1}", "ssl": True}


NODES = {
    "router": {"options": ["--master", "--http", ":8080", "--http-subscription-server",
                           ":2626", "--http-timeout", "5"],
               "address": "10.0.0.1", "allow_no_app": True},
    "b1": backend(1),
    "b2": backend(2),
    "b3": backend(3),
}
SEED = 14
DURATION = 120


def timeline(cluster):
    cluster.at(30, cluster.net.partition, ["router", "b1", "b2"], ["b3"])
    cluster.at(60, cluster.kill, "b2")
    cluster.at(90, cluster.net.heal)
    second = 1
    while second < DURATION:
        cluster.run_until(second)
        response = cluster.request("10.0.0.1:8080", headers={"Host": "shop.example"})
        assert response.status == 200, f"{second} s: {response.reason}"
        second = max(second + 1, int(cluster.now) + 1)
    cluster.run_until(DURATION)


def served(cluster, since=0, until=float("inf")):
    """The backends the router sent requests to between two times, in order."""
    return [r["backend"] for r in cluster.trace.select("router.route")
            if since <= r.time < until]


def check(cluster):
    before = served(cluster, until=30)
    assert set(before) == {"10.0.0.2:3031", "10.0.0.3:3031", "10.0.0.4:3031"}, before
    assert "10.0.0.4:3031" not in served(cluster, 36, 90), "b3 is cut off"
    assert "10.0.0.3:3031" not in served(cluster, 60), "b2 is dead"
    assert "10.0.0.4:3031" in served(cluster, 100), "b3 is back after the heal"
    dead = {(r["address"], r["why"]) for r in cluster.trace.select("subscription.dead")}
    assert dead == {("10.0.0.4:3031", "failed"), ("10.0.0.3:3031", "failed")}, dead
    assert all(r["status"] == 200 for r in cluster["b1"].trace.select("request.end"))
    lords = [(r.time, r.node, r.kind) for r in cluster.trace.select("legion.*")
             if r.kind in ("legion.lord", "legion.unlord")]
    assert lords[0][1:] == ("b1", "legion.lord") and lords[0][0] < 10, lords
    assert all(node == "b1" for _, node, _ in lords), f"only b1 is ever Lord: {lords}"
    assert [kind for _, _, kind in lords][-2:] == ["legion.unlord", "legion.lord"], lords


def state(cluster):
    return {"served": served(cluster)}
