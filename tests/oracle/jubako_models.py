"""Jubako's side of the golden model files: build a case of
:mod:`tests.oracle.model_cases` with the engine's service class, save it as a model file,
load a file into it, and answer the case's questions in the shape
:mod:`tests.oracle.core_models` answers them.

Calls go through the service's generated signatures (the arguments are decoded from their
wire form as the server decodes them, results encoded as it sends them), so what is
compared is what a client would see.
"""

from __future__ import annotations

import importlib
import json
import random
import uuid
from typing import Any
from unittest import mock

from runtime import ServerBase
from runtime.server.persistence import decode_model_file, encode_model_file
from runtime.wire import types as wire_types

SERVICES: dict[str, tuple[str, str]] = {
    "classifier": ("ClassifierServ", "CLASSIFIER"),
    "stat": ("StatServ", "STAT"),
    "regression": ("RegressionServ", "REGRESSION"),
    "weight": ("WeightServ", "WEIGHT"),
    "nearest_neighbor": ("NearestNeighborServ", "NEAREST_NEIGHBOR"),
    "recommender": ("RecommenderServ", "RECOMMENDER"),
    "anomaly": ("AnomalyServ", "ANOMALY"),
}


def datum_wire(row: dict[str, Any]) -> list[Any]:
    strings = [[k, v] for k, v in row.items() if isinstance(v, str)]
    numbers = [[k, float(v)] for k, v in row.items() if not isinstance(v, str)]
    return [strings, numbers, []]


def wire_arguments(method: str, args: list[Any]) -> list[Any]:
    """The wire form of a call written with rows as dicts (see ``core_models._arguments``)."""
    if method == "train":
        return [[[target, datum_wire(row)] for target, row in args[0]]]
    if method in ("classify", "estimate"):
        return [[datum_wire(row) for row in args[0]]]
    if method in ("update", "calc_weight", "add", "calc_score"):
        if method == "update" and len(args) == 2:
            return [args[0], datum_wire(args[1])]
        return [datum_wire(args[0])]
    if method in ("set_row", "update_row", "overwrite"):
        return [args[0], datum_wire(args[1])]
    if method in ("neighbor_row_from_datum", "similar_row_from_datum", "complete_row_from_datum"):
        return [datum_wire(args[0]), *args[1:]]
    return list(args)


#: The owner the row engines write in each row's version: a random name per model
#: (``engines.common.nearest_neighbor.owner_id``), fixed here so that a case saves the same
#: bytes each time.
OWNER = uuid.UUID(int=0x0B0B0B0B0B0B << 80)


def new_service(case: dict[str, Any], config_json: str | None = None) -> ServerBase:
    class_name, _ = SERVICES[case["engine"]]
    module = importlib.import_module(f"engines.{case['engine']}.{case['engine']}_serv")
    with mock.patch("uuid.uuid4", return_value=OWNER):
        serv: ServerBase = getattr(module, class_name)(config_json or json.dumps(case["config"]))
    # The neighbour classifiers and regressions name each trained row with random
    # characters (as Jubatus does): seeded here for the same reason.
    model = getattr(serv, "model", None)
    for part in ("core", "neighbors"):  # classifier, regression
        names = getattr(getattr(model, part, None), "_random", None)
        if isinstance(names, random.Random):
            names.seed(case["name"])
    return serv


def call(serv: ServerBase, engine: str, request: list[Any]) -> Any:
    """One call, as a client sees it: ``{"error": name}`` when the service raises."""
    method, *args = request
    types = importlib.import_module(f"engines.{engine}.{engine}_types")
    signature = getattr(types, f"{SERVICES[engine][1]}_{method.upper()}")
    decoded = [
        kind.decode(value)
        for kind, value in zip(signature.args, wire_arguments(method, args), strict=True)
    ]
    try:
        result = getattr(serv, method)(*decoded)
    except Exception as error:
        return {"error": type(error).__name__}
    return plain(signature.result, signature.result.encode(result))


def plain(kind: object, value: Any) -> Any:
    """A wire result in ``core_models._plain``'s shape (datums as their sorted values)."""
    if isinstance(kind, wire_types.DatumType):
        strings, numbers, _ = value
        return [sorted(map(list, strings)), sorted(map(list, numbers))]
    if isinstance(kind, wire_types.List):
        return [plain(kind.element, v) for v in value]
    if isinstance(value, dict):
        return {str(k): v for k, v in sorted(value.items())}
    return value


def build(case: dict[str, Any]) -> ServerBase:
    serv = new_service(case)
    for request in case["build"]:
        call(serv, case["engine"], request)
    return serv


def answers(serv: ServerBase, case: dict[str, Any]) -> list[Any]:
    return [call(serv, case["engine"], request) for request in case["ask"]]


def save_bytes(serv: ServerBase, case: dict[str, Any]) -> bytes:
    """The model file ``save`` would write (id ``""``, timestamp 0: reproducible bytes)."""
    return encode_model_file(
        service_type=case["engine"],
        model_id="",
        config_json=serv.config_json,
        user_data_version=serv.user_data_version,
        payload=serv.pack(),
        timestamp=0,
    )


def load_bytes(case: dict[str, Any], data: bytes) -> ServerBase:
    """A fresh service of the file's config with the file loaded, as ``load`` does it."""
    model = decode_model_file(
        data,
        service_type=case["engine"],
        user_data_version=None,
    )
    serv = new_service(case, model.config_json)
    assert model.user_data_version == serv.user_data_version
    holder = serv.snapshot_model()
    if holder is not None:
        holder.write(lambda _model: serv.unpack(model.payload), name="load")
    else:
        serv.unpack(model.payload)
    return serv
