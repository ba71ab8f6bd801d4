"""Drive a stat server with the official jubatus.stat.client.Stat; print what it returned."""

import json
import sys

from jubatus.stat.client import Stat


def main():
    request = json.load(sys.stdin)
    client = Stat(request["host"], request["port"], request["name"], 10)
    out = {}
    for value in (1.0, 2.0, 3.0, 6.0):
        client.push("a", value)
    client.push("b", 10.0)
    out["sum"] = client.sum("a")
    out["stddev"] = client.stddev("a")
    out["max"] = client.max("a")
    out["min"] = client.min("a")
    out["entropy"] = client.entropy("a")
    out["moment"] = client.moment("a", 2, 3.0)
    out["types"] = sorted({type(out[k]).__name__ for k in list(out)})
    out["save"] = client.save("s1")
    out["clear"] = client.clear()
    try:
        client.sum("a")
    except Exception as error:
        out["after_clear"] = type(error).__name__ + ": " + str(error)
    out["load"] = client.load("s1")
    out["sum_after_load"] = client.sum("a")
    out["config"] = client.get_config()
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
