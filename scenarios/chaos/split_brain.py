"""A split-brain Legion: two Lords during a partition, each doing the Lord's job.

Three nodes elect a Lord of the legion "billing"; only the Lord bills each 10 s period.
Legion's quorum defaults to 0: when a partition cuts a node off, that node rules its
side alone while the other two elect a Lord of their own, and both bill the same
periods. Found and shrunk to one partition by:

    simuwsgi explore scenarios/chaos/split_brain.py --faults net --seeds 20

``split_brain_fixed.py`` sets ``--legion-quorum billing 2``: the side with one node has
no Lord, and no period is billed twice.
"""

from collections import Counter

IPS = {"n1": "10.0.0.1", "n2": "10.0.0.2", "n3": "10.0.0.3"}
VALORS = {"n1": 90, "n2": 80, "n3": 70}
EXTRA: list[str] = []


def node(name):
    options = ["--master", "--processes", "1", "--socket", ":3031",
               "--legion", f"billing {IPS[name]}:4000 {VALORS[name]} aes-128-cbc:s3cret",
               "--wsgi-file", "apps/billing.py", *EXTRA]
    for peer, ip in IPS.items():
        if peer != name:
            options += ["--legion-node", f"billing {ip}:4000"]
    return {"options": options, "address": IPS[name], "ssl": True}


NODES = {name: node(name) for name in IPS}
DURATION = 240


def check(cluster):
    billed = Counter()
    for line in cluster.log:
        if "billed period" in line:
            billed[int(line.rsplit(" ", 1)[1])] += 1
    twice = sorted(period for period, n in billed.items() if n > 1)
    assert not twice, f"periods billed twice (two Lords): {twice}"
    assert billed, "nothing billed: no Lord"
