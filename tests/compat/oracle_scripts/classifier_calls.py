"""Drive a classifier server with the official jubatus.classifier.client.Classifier.

stdin: {"host", "port", "name"}; stdout: a JSON object of what each call returned (with
the Python type names the client produced), or the exception it raised.
"""

import json
import sys

from jubatus.classifier.client import Classifier
from jubatus.classifier.types import LabeledDatum
from jubatus.common import Datum


def main():
    request = json.load(sys.stdin)
    client = Classifier(request["host"], request["port"], request["name"], 10)
    out = {}
    data = []
    for i in range(60):
        data.append(LabeledDatum("pos", Datum({"word": "good", "x": 1.0 + i % 3})))
        data.append(LabeledDatum("neg", Datum({"word": "bad", "x": -1.0 - i % 3})))
    out["train"] = client.train(data)
    queries = [Datum({"word": "good", "x": 2.0}), Datum({"word": "bad", "x": -2.0})]
    results = client.classify(queries)
    out["classify"] = [[[r.label, r.score, type(r).__name__] for r in row] for row in results]
    out["get_labels"] = client.get_labels()
    out["set_label"] = client.set_label("neutral")
    out["delete_label"] = client.delete_label("neutral")
    out["save"] = client.save("m1")
    out["clear"] = client.clear()
    out["labels_after_clear"] = client.get_labels()
    out["load"] = client.load("m1")
    out["labels_after_load"] = client.get_labels()
    status = client.get_status()
    out["status_types"] = sorted({type(v).__name__ for s in status.values() for v in s.values()})
    out["num_classes"] = [s.get("num_classes") for s in status.values()]
    out["config"] = client.get_config()
    try:
        client.train([LabeledDatum("pos", Datum({"word": "x"}))] * 0 + [["only-label"]])
    except Exception as error:
        out["bad_train"] = type(error).__name__
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
