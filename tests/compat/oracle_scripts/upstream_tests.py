"""Run the official client's own integration tests (its sdist's ``test/jubatus_test``) for
one service against whatever ``juba<service>`` is first on PATH; print the outcome as JSON.

Request on stdin: ``{"tests": DIR, "service": NAME, "port": N, "workdir": DIR}``. The
tests' fixed port is replaced by ``port`` (a free one), and they run in ``workdir`` (they
write their config files and models into the current directory).
"""

import importlib
import json
import os
import sys
import unittest


def main():
    request = json.load(sys.stdin)
    sys.path.insert(0, request["tests"])
    os.chdir(request["workdir"])
    module = importlib.import_module("jubatus_test.{}.test".format(request["service"]))
    module.port = request["port"]
    suite = unittest.TestLoader().loadTestsFromModule(module)
    with open(os.devnull, "w") as sink:
        result = unittest.TextTestRunner(stream=sink, verbosity=0).run(suite)
    out = {
        "run": result.testsRun,
        "failures": [[test.id(), text[-2000:]] for test, text in result.failures],
        "errors": [[test.id(), text[-2000:]] for test, text in result.errors],
        "skipped": [test.id() for test, _ in result.skipped],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
