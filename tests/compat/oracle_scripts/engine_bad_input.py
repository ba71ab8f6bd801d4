"""Bad input to one engine's server through the official client; print what came back.

Request: ``{"engine": E, "port": PORT}``. Every call's answer or error text is recorded,
then ``get_status`` shows the server still serves.
"""

import json
import sys

from jubatus.common import Datum

BAD_KEY = Datum({"a$b": 1.0})
HUGE = 2**32 - 1


def attempt(out, name, call):
    try:
        result = call()
        out[name] = {"ok": json.loads(json.dumps(result, default=repr))}
    except Exception as error:
        out[name] = {"error": str(error)}


def main():
    request = json.load(sys.stdin)
    engine, port = request["engine"], request["port"]
    out = {}
    if engine == "regression":
        from jubatus.regression.client import Regression
        from jubatus.regression.types import ScoredDatum

        c = Regression("127.0.0.1", port, "b", 10)
        attempt(out, "estimate_empty", lambda: c.estimate([Datum(), Datum({"x": 1.0})]))
        attempt(out, "bad_key", lambda: c.train([ScoredDatum(1.0, BAD_KEY)]))
        attempt(out, "nothing", lambda: c.train([ScoredDatum(1.0, Datum())]))
    elif engine == "weight":
        from jubatus.weight.client import Weight

        c = Weight("127.0.0.1", port, "b", 10)
        attempt(out, "empty", lambda: [f.key for f in c.calc_weight(Datum())])
        attempt(out, "bad_key", lambda: c.update(BAD_KEY))
    elif engine == "nearest_neighbor":
        from jubatus.nearest_neighbor.client import NearestNeighbor

        c = NearestNeighbor("127.0.0.1", port, "b", 10)
        attempt(out, "unknown_id", lambda: c.neighbor_row_from_id("nope", 10))
        attempt(out, "empty_model", lambda: c.similar_row_from_datum(Datum({"x": 1.0}), HUGE))
        attempt(out, "bad_key", lambda: c.set_row("k", BAD_KEY))
        c.set_row("a", Datum({"x": 1.0}))
        attempt(out, "huge", lambda: len(c.neighbor_row_from_id("a", HUGE)))
    elif engine == "recommender":
        from jubatus.recommender.client import Recommender

        c = Recommender("127.0.0.1", port, "b", 10)
        attempt(out, "unknown_id", lambda: c.similar_row_from_id("nope", 10))
        attempt(out, "decode_unknown", lambda: repr(c.decode_row("nope")))
        attempt(out, "complete_unknown", lambda: repr(c.complete_row_from_id("nope")))
        attempt(out, "bad_rate", lambda: c.similar_row_from_datum_and_rate(Datum(), 2.0))
        attempt(out, "bad_key", lambda: c.update_row("k", BAD_KEY))
        c.update_row("a", Datum({"x": 1.0}))
        attempt(out, "huge", lambda: len(c.similar_row_from_id("a", HUGE)))
    elif engine == "anomaly":
        from jubatus.anomaly.client import Anomaly

        c = Anomaly("127.0.0.1", port, "b", 10)
        attempt(out, "empty_model", lambda: c.calc_score(Datum({"x": 1.0})))
        attempt(out, "bad_key", lambda: c.add(BAD_KEY))
        attempt(out, "unknown_update", lambda: c.update("nope", Datum({"x": 1.0})))
        attempt(out, "clear_unknown", lambda: c.clear_row("nope"))
    attempt(out, "status", lambda: sorted(next(iter(c.get_status().values())))[:1])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
