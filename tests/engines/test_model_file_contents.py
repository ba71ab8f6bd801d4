"""Model files whose header and CRC are sound but whose contents do not hold together: each
is refused by ``load`` with a ``ModelFileError`` naming the place, and the model that was
loaded before stays as it was. (Before: some loaded and then failed every query, one made
every later ``save`` fail, one raised ``AttributeError``.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from engines.anomaly.anomaly_serv import AnomalyServ
from engines.nearest_neighbor.nearest_neighbor_serv import NearestNeighborServ
from engines.weight.weight_serv import WeightServ
from runtime import Datum, ServerBase
from runtime.errors import ModelFileError
from runtime.server.persistence import decode_model_file, encode_model_file

NUM = {"num_rules": [{"key": "*", "type": "num"}]}
LOF_PARAMETER = {"nearest_neighbor_num": 2, "reverse_nearest_neighbor_num": 4}


def _nearest_neighbor() -> ServerBase:
    serv = NearestNeighborServ(
        json.dumps({"method": "lsh", "parameter": {"hash_num": 8}, "converter": NUM})
    )
    for i in range(3):
        serv.model.set_row(f"r{i}", Datum({"x": float(i)}))
    return serv


def _anomaly(method: str, backend: str, parameter: dict[str, Any]) -> ServerBase:
    inner = {"method": backend, "parameter": parameter}
    config = {"method": method, "parameter": {**LOF_PARAMETER, **inner}, "converter": NUM}
    serv = AnomalyServ(json.dumps(config))
    for i in range(3):
        serv.model.add(Datum({"x": float(i)}))
    return serv


def _weight() -> ServerBase:
    rule = {"key": "*", "type": "space", "sample_weight": "tf", "global_weight": "idf"}
    serv = WeightServ(json.dumps({"converter": {"string_rules": [rule]}}))
    serv.model.update(Datum({"t": "hello world"}))
    return serv


def _file(payload: object) -> object:
    """``payload`` through a model file and back, as ``load`` reads it."""
    data = encode_model_file(
        service_type="t", model_id="m", config_json="{}", user_data_version=1, payload=payload
    )
    return decode_model_file(data, service_type="t", user_data_version=1).payload


def _set(path: tuple[Any, ...], value: object) -> Callable[[Any], None]:
    def edit(payload: Any) -> None:
        for step in path[:-1]:
            payload = payload[step]
        payload[path[-1]] = value

    return edit


def _drop_score(payload: Any) -> None:
    """lof: the row ``b'1'`` loses its k-distance and lrd; the index keeps the row."""
    del payload[0][0][0][b"1"]


def _rename_score_row(payload: Any) -> None:
    """light_lof: the score table's second row renamed to the first's id."""
    payload[0][1][0][1] = b"0"


CASES: dict[str, tuple[Callable[[], ServerBase], Callable[[Any], None], str]] = {
    "a negative document frequency": (
        _weight,
        _set((0, 1, 1, 0, b"t$hello@space#tf/idf"), -1.0),
        "expected a count, got -1.0",
    ),
    "a row position map that is not a map": (
        _nearest_neighbor,
        _set((0, 5), True),
        "model[0][5]: expected a map, got bool",
    ),
    "a row clock past 2^62": (
        _nearest_neighbor,
        _set((0, 2, 1, 1), 2**64 - 1),
        "must be <= 2^62",
    ),
    "a lof row without its scores": (
        lambda: _anomaly("lof", "inverted_index_euclid", {}),
        _drop_score,
        "row '1' has no k-distance and lrd",
    ),
    "a light_lof row without its scores": (
        lambda: _anomaly("light_lof", "euclid_lsh", {"hash_num": 8}),
        _rename_score_row,
        "row '1' has no k-distance and lrd",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_that_does_not_hold_together_is_refused(case: str) -> None:
    make, edit, message = CASES[case]
    serv = make()
    payload = _file(serv.pack())
    before = _file(serv.pack())
    edit(payload)
    with pytest.raises(ModelFileError, match=re.escape(message)):
        serv.unpack(payload)
    assert _file(serv.pack()) == before  # the model loaded before is untouched
    serv.unpack(_file(serv.pack()))  # and a sound file still loads
