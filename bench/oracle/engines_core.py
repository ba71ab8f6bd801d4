"""Time Jubatus's C++ core (``embedded_jubatus``) on a job from ``bench.engines``.

Run by ``bench.engines`` with the core's Python; reads a JSON job on stdin (``engine``,
``config``, ``updates`` and ``queries``: rows as dicts) and prints the seconds each phase
took. Not part of the test suite; needs the core built per the oracle note.
"""

import json
import sys
import time

from jubatus.common import Datum


def main():
    job = json.load(sys.stdin)
    import embedded_jubatus as core

    engine = job["engine"]
    cls = {
        "regression": core.Regression,
        "weight": core.Weight,
        "nearest_neighbor": core.NearestNeighbor,
        "recommender": core.Recommender,
        "anomaly": core.Anomaly,
        "classifier": core.Classifier,
    }[engine]
    model = cls(job["config"])
    updates = [Datum(row) for row in job["updates"]]
    queries = [Datum(row) for row in job["queries"]]
    started = time.perf_counter()
    for i, datum in enumerate(updates):
        if engine == "regression":
            model.train([(float(i % 13), datum)])
        elif engine == "weight":
            model.update(datum)
        elif engine == "nearest_neighbor":
            model.set_row(f"r{i}", datum)
        elif engine == "recommender":
            model.update_row(f"r{i}", datum)
        elif engine == "anomaly":
            model.add(datum)
        else:
            model.train([(f"c{i % 5}", datum)])
    update_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for datum in queries:
        if engine == "regression":
            model.estimate([datum])
        elif engine == "weight":
            model.calc_weight(datum)
        elif engine == "nearest_neighbor":
            model.neighbor_row_from_datum(datum, 10)
        elif engine == "recommender":
            model.similar_row_from_datum(datum, 10)
        elif engine == "anomaly":
            model.calc_score(datum)
        else:
            model.classify([datum])
    query_seconds = time.perf_counter() - started
    json.dump({"update": update_seconds, "query": query_seconds}, sys.stdout)


if __name__ == "__main__":
    main()
