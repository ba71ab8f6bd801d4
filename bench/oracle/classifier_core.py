"""Time Jubatus's C++ core (``embedded_jubatus``) on the in-process job of
``bench.vs_jubatus``.

Run with the core's Python; reads a JSON job on stdin (``config``, ``train``: ``[label, row]``
pairs, ``test``: rows, ``passes``), trains one datum per call over ``passes`` passes, then
classifies one datum per call over ``4 * passes`` passes of the test rows, and prints the
seconds of each phase and the label it predicts for every test row. Not part of the test
suite; needs the core built per the oracle note.
"""

import json
import sys
import time

from jubatus.common import Datum


def main():
    job = json.load(sys.stdin)
    import embedded_jubatus as core

    model = core.Classifier(job["config"])
    examples = [(label, Datum(row)) for label, row in job["train"]]
    queries = [Datum(row) for row in job["test"]]
    started = time.perf_counter()
    for _ in range(job["passes"]):
        for example in examples:
            model.train([example])
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(job["passes"] * 4):
        for query in queries:
            model.classify([query])
    classify_seconds = time.perf_counter() - started
    predictions = []
    for results in model.classify(queries):
        best = max(results, key=lambda r: r.score)
        predictions.append(best.label)
    json.dump(
        {
            "train_seconds": train_seconds,
            "classify_seconds": classify_seconds,
            "predictions": predictions,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
