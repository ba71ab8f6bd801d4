"""JSON with tags for what JSON lacks, shared by the oracle scripts (old venv side).

bytes -> {"$bytes": hex}; every map -> {"$map": [[k, v], ...]}; tuples -> lists;
jubatus Datum -> {"$datum": [strings, numbers, binaries]}; a generated message object ->
{"$msg": "module.Class", "fields": [...]}; an exception -> {"$exc": "module.Class",
"args": [...]}. The main-venv twin is tests/compat/oracle.py; keep the two in step.
"""

import importlib


def dump(value):
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {"$map": [[dump(k), dump(v)] for k, v in value.items()]}
    if isinstance(value, BaseException):
        cls = type(value)
        return {
            "$exc": cls.__module__ + "." + cls.__qualname__,
            "args": [dump(a) for a in value.args],
        }
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    cls = type(value)
    if cls.__name__ == "Datum" and hasattr(value, "binary_values"):
        return {
            "$datum": [dump(value.string_values), dump(value.num_values), dump(value.binary_values)]
        }
    if hasattr(cls, "TYPE") and hasattr(value, "to_msgpack"):
        return {"$msg": cls.__module__ + "." + cls.__qualname__, "fields": dump(value.to_msgpack())}
    raise TypeError(f"cannot tag {value!r}")


def find_class(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def load(value):
    if isinstance(value, list):
        return [load(v) for v in value]
    if isinstance(value, dict):
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        if "$map" in value:
            return {load(k): load(v) for k, v in value["$map"]}
        if "$datum" in value:
            from jubatus.common import Datum

            datum = Datum()
            strings, numbers, binaries = (load(part) for part in value["$datum"])
            datum.string_values = strings
            datum.num_values = numbers
            datum.binary_values = binaries
            return datum
        if "$msg" in value:
            return find_class(value["$msg"])(*load(value["fields"]))
        raise ValueError(f"unknown tag in {value!r}")
    return value
