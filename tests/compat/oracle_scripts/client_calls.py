"""Make calls with the official jubatus client or msgpackrpc.Client; report each outcome.

stdin: {"client": "jubatus" | "msgpackrpc", "host", "port", "name", "timeout",
        "calls": [{"method", "args": [tagged], "arg_types": [spec], "ret_type": spec|null}]}
(msgpackrpc calls carry "params" instead of args/arg_types/ret_type.)
stdout: [{"ok": tagged result} | {"raised": tagged exception, "repr": str}, + "elapsed"]

Type specs: "string" "raw" "float" "bool" "datum" "object" | ["int", signed, bytes] |
["list", t] | ["map", k, v] | ["tuple", t, ...] | ["nullable", t] | ["enum", [ints]] |
["userdef", "module.Class"].
"""

import json
import sys
import time

import _tagged


def make_type(spec):
    from jubatus.common import types as t

    simple = {
        "string": t.TString,
        "raw": t.TRaw,
        "float": t.TFloat,
        "bool": t.TBool,
        "datum": t.TDatum,
        "object": t.TObject,
    }
    if isinstance(spec, str):
        return simple[spec]()
    kind, rest = spec[0], spec[1:]
    if kind == "int":
        return t.TInt(rest[0], rest[1])
    if kind == "list":
        return t.TList(make_type(rest[0]))
    if kind == "map":
        return t.TMap(make_type(rest[0]), make_type(rest[1]))
    if kind == "tuple":
        return t.TTuple(*[make_type(r) for r in rest])
    if kind == "nullable":
        return t.TNullable(make_type(rest[0]))
    if kind == "enum":
        return t.TEnum(rest[0])
    if kind == "userdef":
        return t.TUserDef(_tagged.find_class(rest[0]))
    raise ValueError(f"unknown type spec {spec!r}")


def outcome(function, *args):
    started = time.monotonic()
    try:
        value = function(*args)
        result = {"ok": _tagged.dump(value)}
    except Exception as error:  # the outcome is the point: report it
        result = {"raised": _tagged.dump(error), "repr": repr(error)}
    result["elapsed"] = time.monotonic() - started
    return result


def main():
    request = json.load(sys.stdin)
    results = []
    if request["client"] == "jubatus":
        from jubatus.common import ClientBase

        base = ClientBase(request["host"], request["port"], request["name"], request["timeout"])
        for call in request["calls"]:
            if call.get("builtin"):
                method = getattr(base, call["method"])
                args = _tagged.load(call["args"])
                results.append(outcome(method, *args))
                continue
            args = _tagged.load(call["args"])
            arg_types = [make_type(s) for s in call["arg_types"]]
            ret = None if call["ret_type"] is None else make_type(call["ret_type"])
            results.append(outcome(base.jubatus_client.call, call["method"], args, ret, arg_types))
        base.get_client().close()
    else:
        import msgpackrpc

        client = msgpackrpc.Client(
            msgpackrpc.Address(request["host"], request["port"]),
            timeout=request["timeout"],
            unpack_encoding=None,
        )
        for call in request["calls"]:
            params = _tagged.load(call["params"])
            results.append(outcome(client.call, call["method"], *params))
        client.close()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
