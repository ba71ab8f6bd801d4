"""Run jubakit's own unit tests by name in jubakit's venv (Python <= 3.9) and write the
outcome as JSON; the tests start ``juba*`` servers and call ``jubadump`` from PATH.

Request on stdin: ``{"root": DIR, "tests": [NAME, ...], "workdir": DIR, "path": [DIR],
"out": FILE}``. ``root`` holds the ``jubakit`` tree whose ``test`` package is run (it goes
first on ``sys.path``); ``path`` goes first on PATH; the tests run in ``workdir``; the
outcome goes to ``out`` (the tests print on stdout): ``run``, ``passed`` (ids),
``failures`` and ``errors`` (``[id, traceback]``), ``skipped`` (``[id, reason]``).
"""

import json
import os
import sys
import unittest


def main():
    request = json.load(sys.stdin)
    sys.path.insert(0, request["root"])
    os.environ["PATH"] = os.pathsep.join(request["path"] + [os.environ.get("PATH", "")])
    os.chdir(request["workdir"])
    import jubakit  # the tree under test, not the venv's copy

    if not os.path.realpath(jubakit.__file__).startswith(os.path.realpath(request["root"])):
        raise SystemExit(
            "jubakit was imported from {}, not {}".format(jubakit.__file__, request["root"])
        )
    suite = unittest.TestLoader().loadTestsFromNames(request["tests"])
    ran = []

    def collect(tests):
        for test in tests:
            if isinstance(test, unittest.TestSuite):
                collect(test)
            else:
                ran.append(test.id())

    collect(suite)  # before the run, which lets go of the tests
    with open(os.devnull, "w") as sink:
        result = unittest.TextTestRunner(stream=sink, verbosity=0).run(suite)
    failed = {test.id() for test, _ in result.failures + result.errors}
    skipped = {test.id() for test, _ in result.skipped}
    out = {
        "run": result.testsRun,
        "passed": sorted(t for t in ran if t not in failed and t not in skipped),
        "failures": [[test.id(), text[-3000:]] for test, text in result.failures],
        "errors": [[test.id(), text[-3000:]] for test, text in result.errors],
        "skipped": sorted([test.id(), reason] for test, reason in result.skipped),
    }
    with open(request["out"], "w") as file:
        json.dump(out, file)


if __name__ == "__main__":
    main()
