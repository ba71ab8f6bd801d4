"""Record the request frames the official jubatus client sends (old venv).

A raw asyncio TCP logger (msgpack 0.5.6, no RPC library) listens on 127.0.0.1, keeps the
exact bytes of every request frame, and answers each with the reply the call expects, so
the client goes on to the next call. The calls are CALLS below; each names what the
official client must return or raise. Output: the golden file (argv[1], default stdout),
one entry per call with the frame in hex and the reply the client accepted (its error and
its packed result). Regenerate with

    .venv-oracle/bin/python tests/compat/oracle_scripts/record_frames.py \\
        tests/compat/golden_frames.json
"""

import asyncio
import json
import sys
import threading

import _tagged
import msgpack
from client_calls import make_type

NAME = "compat"
DATUM = {
    "$datum": [
        [["text", "hello"], ["lang", "\u65e5\u672c\u8a9e"]],
        [["len", 5.0], ["ratio", 0.5]],
        [["img", {"$bytes": "0001ff"}], ["empty", {"$bytes": ""}]],
    ]
}
SMALL_DATUM = {"$datum": [[], [["x", 1.0]], []]}
ESTIMATE = "jubatus.classifier.types.EstimateResult"
LABELED = "jubatus.classifier.types.LabeledDatum"
STATUS = ["map", "string", ["map", "string", "string"]]
UNKNOWN = {"raises": "jubatus.common.client.UnknownMethod"}
MISMATCH = {"raises": "jubatus.common.client.TypeMismatch"}


def ok(value):
    return {"ok": value}


def call(name, method, args, arg_types, ret_type, expect):
    return {
        "name": name,
        "method": method,
        "args": args,
        "arg_types": arg_types,
        "ret_type": ret_type,
        "expect": expect,
    }


def builtin(name, method, args, ret_type, expect):
    entry = call(name, method, args, None, ret_type, expect)
    entry["builtin"] = True
    return entry


LONG = "x" * 40
CALLS = [
    builtin("get_config", "get_config", [], "string", ok('{"method": "echo"}')),
    builtin(
        "save",
        "save",
        ["m1"],
        ["map", "string", "string"],
        ok({"$map": [["127.0.0.1_0", "/tmp/127.0.0.1_0_compat_m1.jubatus"]]}),
    ),
    builtin("load", "load", ["m1"], "bool", ok(True)),
    builtin(
        "get_status",
        "get_status",
        [],
        STATUS,
        ok({"$map": [["127.0.0.1_0", {"$map": [["type", "compat"], ["uptime", "1"]]}]]}),
    ),
    call(
        "string",
        "echo_string",
        ["h\u00e9llo w\u00f6rld"],
        ["string"],
        "string",
        ok("h\u00e9llo w\u00f6rld"),
    ),
    call("string_raw16", "echo_string", [LONG], ["string"], "string", ok(LONG)),
    call("string_empty", "echo_string", [""], ["string"], "string", ok("")),
    call("raw", "echo_raw", [{"$bytes": "0001ff"}], ["raw"], "raw", ok({"$bytes": "0001ff"})),
    call(
        "raw_not_utf8", "echo_raw", [{"$bytes": "c328ff"}], ["raw"], "raw", ok({"$bytes": "c328ff"})
    ),
    call(
        "long_list",
        "echo_longs",
        [[1, -2, 2**40, -(2**63), 2**63 - 1]],
        [["list", ["int", True, 8]]],
        ["list", ["int", True, 8]],
        ok([1, -2, 2**40, -(2**63), 2**63 - 1]),
    ),
    call(
        "nested_lists",
        "echo_nested",
        [[["a", "b"], [], ["c"]]],
        [["list", ["list", "string"]]],
        ["list", ["list", "string"]],
        ok([["a", "b"], [], ["c"]]),
    ),
    call(
        "map",
        "echo_map",
        [{"$map": [["x", [1.0, 2.5]], ["y", []], ["\u00fc", [-0.5]]]}],
        [["map", "string", ["list", "float"]]],
        ["map", "string", ["list", "float"]],
        ok({"$map": [["x", [1.0, 2.5]], ["y", []], ["\u00fc", [-0.5]]]}),
    ),
    call(
        "message",
        "echo_estimate",
        [{"$msg": ESTIMATE, "fields": ["pos", 0.75]}],
        [["userdef", ESTIMATE]],
        ["userdef", ESTIMATE],
        ok({"$msg": ESTIMATE, "fields": ["pos", 0.75]}),
    ),
    call(
        "message_list",
        "echo_estimates",
        [[{"$msg": ESTIMATE, "fields": ["a", 1.0]}, ["b", -2.0]]],
        [["list", ["userdef", ESTIMATE]]],
        ["list", ["userdef", ESTIMATE]],
        ok([{"$msg": ESTIMATE, "fields": ["a", 1.0]}, {"$msg": ESTIMATE, "fields": ["b", -2.0]}]),
    ),
    call("datum", "echo_datum", [DATUM], ["datum"], "datum", ok(DATUM)),
    call(
        "datum_empty",
        "echo_datum",
        [{"$datum": [[], [], []]}],
        ["datum"],
        "datum",
        ok({"$datum": [[], [], []]}),
    ),
    call(
        "train",
        "train",
        [
            [
                {"$msg": LABELED, "fields": ["pos", DATUM]},
                {"$msg": LABELED, "fields": ["neg", SMALL_DATUM]},
            ]
        ],
        [["list", ["userdef", LABELED]]],
        ["int", True, 4],
        ok(2),
    ),
    call("int", "add", [2, 40], [["int", True, 4], ["int", True, 4]], ["int", True, 4], ok(42)),
    call(
        "int_negative",
        "add",
        [-(2**31), 5],
        [["int", True, 4], ["int", True, 4]],
        ["int", True, 4],
        ok(-(2**31) + 5),
    ),
    call("uint", "echo_uint", [2**32 - 1], [["int", False, 4]], ["int", False, 4], ok(2**32 - 1)),
    call("bool_true", "echo_bool", [True], ["bool"], "bool", ok(True)),
    call("bool_false", "echo_bool", [False], ["bool"], "bool", ok(False)),
    call("double", "echo_double", [0.5], ["float"], "float", ok(0.5)),
    call("double_integral", "echo_double", [3.0], ["float"], "float", ok(3.0)),
    call("double_big", "echo_double", [-1e300], ["float"], "float", ok(-1e300)),
    call(
        "nullable_none",
        "echo_nullable",
        [None],
        [["nullable", "string"]],
        ["nullable", "string"],
        ok(None),
    ),
    call(
        "nullable_value",
        "echo_nullable",
        ["v"],
        [["nullable", "string"]],
        ["nullable", "string"],
        ok("v"),
    ),
    call("enum", "echo_enum", [2], [["enum", [0, 1, 2]]], ["enum", [0, 1, 2]], ok(2)),
    call(
        "object",
        "echo_object",
        [{"$map": [["a", [1, "x", None, 1.5]]]}],
        ["object"],
        "object",
        ok({"$map": [[{"$bytes": "61"}, [1, {"$bytes": "78"}, None, 1.5]]]}),
    ),
    call(
        "user_error",
        "fail",
        ["boom: bad input"],
        ["string"],
        "bool",
        {"raises": "msgpackrpc.error.RPCError", "message": "boom: bad input"},
    ),
    call("unknown_method", "no_such_method", [], [], "bool", UNKNOWN),
    call("wrong_type", "add", ["a", "b"], ["string", "string"], ["int", True, 4], MISMATCH),
    call("too_few_args", "add", [1], [["int", True, 4]], ["int", True, 4], MISMATCH),
    call(
        "wrong_nested_type",
        "echo_longs",
        [["a"]],
        [["list", "string"]],
        ["list", ["int", True, 8]],
        MISMATCH,
    ),
    call("sleep_short", "sleep", [0.01], ["float"], "bool", ok(True)),
]


def reply_for(entry, method):
    expect = entry["expect"]
    if "ok" in expect:
        ret = make_type(entry["ret_type"])
        return None, ret.to_msgpack(_tagged.load(expect["ok"]))
    kind = expect["raises"]
    if kind.endswith("UnknownMethod"):
        return 1, method
    if kind.endswith("TypeMismatch"):
        return 2, "type error"
    return expect["message"], None


class Logger(asyncio.Protocol):
    """Keeps the bytes of each request frame and answers from the queue of expectations."""

    def __init__(self, frames, entries, replies):
        self.frames = frames
        self.replies = replies
        self.entries = entries
        self.buffer = b""
        self.unpacker = msgpack.Unpacker(raw=True)
        self.packer = msgpack.Packer(use_bin_type=False)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        self.unpacker.feed(data)
        for message in self.unpacker:
            consumed = self.unpacker.tell()
            frame, self.buffer = (
                self.buffer[: consumed - self.done],
                self.buffer[consumed - self.done :],
            )
            self.done = consumed
            entry = self.entries[len(self.frames)]
            self.frames.append(frame)
            error, result = reply_for(entry, message[2].decode("utf-8"))
            self.replies.append(
                {"error": _tagged.dump(error), "result_hex": self.packer.pack(result).hex()}
            )
            self.transport.write(self.packer.pack([1, message[1], error, result]))

    done = 0


def serve(loop, frames, entries, replies, ready):
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: Logger(frames, entries, replies), "127.0.0.1", 0)
    )
    ready.append(server.sockets[0].getsockname()[1])
    loop.run_forever()
    server.close()
    loop.run_until_complete(server.wait_closed())


def main():
    from jubatus.common import ClientBase

    frames, replies, ready = [], [], []
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=serve, args=(loop, frames, CALLS, replies, ready), daemon=True)
    thread.start()
    while not ready:
        threading.Event().wait(0.01)
    client = ClientBase("127.0.0.1", ready[0], NAME, 5)
    golden = []
    for entry in CALLS:
        args = _tagged.load(entry["args"])
        try:
            if entry.get("builtin"):
                value = getattr(client, entry["method"])(*args)
            else:
                ret = make_type(entry["ret_type"])
                types = [make_type(s) for s in entry["arg_types"]]
                value = client.jubatus_client.call(entry["method"], args, ret, types)
            seen = {"ok": _tagged.dump(value)}
        except Exception as error:
            seen = {"raises": type(error).__module__ + "." + type(error).__qualname__}
        wanted = entry["expect"]
        if seen.get("ok", None) != wanted.get("ok", None) or seen.get("raises") != wanted.get(
            "raises"
        ):
            raise SystemExit(f"{entry['name']}: the client gave {seen!r}, expected {wanted!r}")
        record = dict(entry)
        record["msgid"] = len(golden)
        record["request_hex"] = frames[len(golden)].hex()
        record["accepted_reply"] = replies[len(golden)]
        golden.append(record)
    client.get_client().close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    text = json.dumps({"cluster_name": NAME, "calls": golden}, indent=1, ensure_ascii=True) + "\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
