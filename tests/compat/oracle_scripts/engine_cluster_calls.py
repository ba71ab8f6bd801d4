"""Drive a Jubako cluster of one engine with the official jubatus client: the calls go
through the proxy; do_mix and per-server checks go to the servers. Prints JSON.

Request on stdin: ``{"engine": E, "proxy": PORT, "servers": [PORT...], "name": CLUSTER}``.
"""

import json
import sys

from jubatus.common import Datum


def point(i):
    return Datum({"x": float(i % 7) + 1.0, "y": float(i % 5) + 1.0, "tag": f"t{i % 3}"})


def clients(cls, request):
    proxy = cls("127.0.0.1", request["proxy"], request["name"], 30)
    servers = [cls("127.0.0.1", port, request["name"], 30) for port in request["servers"]]
    return proxy, servers


def mix(servers):
    return servers[0].do_mix()


def run_regression(request, out):
    from jubatus.regression.client import Regression
    from jubatus.regression.types import ScoredDatum

    proxy, servers = clients(Regression, request)
    trained = 0
    for i in range(60):
        trained += proxy.train([ScoredDatum(float(i % 7) * 2.0 + 1.0, point(i))])
    out["trained"] = trained
    out["counts"] = [int(next(iter(s.get_status().values()))["update_count"]) for s in servers]
    out["mix"] = mix(servers)
    query = [point(3), point(10)]
    out["estimates"] = [s.estimate(query) for s in servers]
    out["proxy_estimate"] = proxy.estimate(query)
    out["clear"] = proxy.clear()
    out["after_clear"] = [s.estimate(query) for s in servers]


def run_weight(request, out):
    from jubatus.weight.client import Weight

    proxy, servers = clients(Weight, request)
    for i in range(30):
        proxy.update(Datum({"text": f"w{i % 6} common"}))
    out["mix"] = mix(servers)
    query = Datum({"text": "w1 common rare"})
    out["weights"] = [[[f.key, f.value] for f in s.calc_weight(query)] for s in servers]
    out["status"] = [next(iter(s.get_status().values()))["master_document_count"] for s in servers]


def run_nearest_neighbor(request, out):
    from jubatus.nearest_neighbor.client import NearestNeighbor

    proxy, servers = clients(NearestNeighbor, request)
    out["set"] = all(proxy.set_row(f"r{i}", point(i)) for i in range(24))
    out["held"] = [len(s.get_all_rows()) for s in servers]
    out["mix"] = mix(servers)
    out["rows"] = [sorted(s.get_all_rows()) for s in servers]
    out["neighbors"] = [[r.id for r in s.neighbor_row_from_id("r5", 3)] for s in servers]
    out["proxy_similar"] = [[r.id, r.score] for r in proxy.similar_row_from_datum(point(5), 2)]


def run_recommender(request, out):
    from jubatus.recommender.client import Recommender

    proxy, servers = clients(Recommender, request)
    out["update"] = all(proxy.update_row(f"r{i}", point(i)) for i in range(24))
    out["mix"] = mix(servers)
    out["rows"] = [sorted(s.get_all_rows()) for s in servers]
    out["similar"] = [[r.id for r in proxy.similar_row_from_id("r5", 3)]]
    out["similar_datum"] = [
        sorted(r.score for r in s.similar_row_from_datum(point(5), 4)) for s in servers
    ]
    decoded = proxy.decode_row("r5")
    out["decode"] = [
        sorted(map(list, decoded.string_values)),
        sorted(map(list, decoded.num_values)),
    ]
    out["clear_row"] = proxy.clear_row("r5")
    out["mix2"] = mix(servers)
    out["rows_after"] = [len(s.get_all_rows()) for s in servers]


def run_anomaly(request, out):
    from jubatus.anomaly.client import Anomaly

    proxy, servers = clients(Anomaly, request)
    added = [proxy.add(point(i)) for i in range(20)]
    out["ids"] = [r.id for r in added]
    out["bulk"] = proxy.add_bulk([point(i) for i in range(20, 26)])
    out["mix"] = mix(servers)
    out["rows"] = [sorted(s.get_all_rows(), key=int) for s in servers]
    far = Datum({"x": 60.0, "y": -40.0, "tag": "t9"})
    out["scores"] = [s.calc_score(far) for s in servers]
    out["near"] = proxy.calc_score(point(3))
    out["update"] = proxy.update(out["ids"][0], point(4))
    out["overwrite"] = proxy.overwrite(out["ids"][1], point(4))


def main():
    request = json.load(sys.stdin)
    out = {}
    globals()["run_" + request["engine"]](request, out)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
