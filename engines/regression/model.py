"""The regression engine's model: a Jubatus regression config turned into a trainable,
mixable regressor.

``RegressionModel(config)`` takes Jubatus's config (``method``, ``parameter``,
``converter``) and offers ``train``, ``estimate`` and ``clear``, ``pack``/``unpack`` for save
and load, and the :class:`~runtime.mix.mixable.Mixable` methods. The methods:

- the linear ones (``perceptron``, ``PA``, ``PA1``, ``PA2``, ``CW``, ``AROW``, ``NHERD``),
  :mod:`engines.common.linear_regression`;
- ``NN`` (``nearest_neighbor``): every example is a row of a nearest-neighbour engine
  (``lsh``, ``minhash``, ``euclid_lsh``) under a random id, with its target; an estimate is
  the mean target of the ``nearest_neighbor_num`` nearest rows (``weight: "distance"``:
  weighted by 1/distance; when the nearest rows are at distance 0, the mean of those);
  an ``unlearner`` bounds the rows;
- ``cosine`` and ``euclidean``: the same over an inverted index, nearest by cosine
  similarity (weight 1/(1 - similarity)) or Euclidean distance.

The mix combines the document counts of the converter (added up) and the method's part:
averaged weights for the linear methods, rows (newest wins) for the others. Diffs of
different versions do not combine: the newer one wins, as in Jubatus.
"""

from __future__ import annotations

import math
import random
import string
import sys
from collections.abc import Sequence

from engines.common.config import Params, engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
)
from engines.common.inverted_index import InvertedIndex
from engines.common.linear_regression import (
    LINEAR_METHODS,
    LinearRegressionMethod,
    RegressionWeights,
    Table,
    create_linear_method,
    mix_tables,
    read_table,
)
from engines.common.nearest_neighbor import NearestNeighborIndex, create_nearest_neighbor, owner_id
from engines.common.storage import storage_status
from engines.common.unlearner import Unlearner, create_unlearner
from engines.common.versions import merge_rows, mix_versioned
from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_float, read_int, read_list, read_map

Features = list[tuple[str, float]]
_ID_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits


class _Neighbors:
    """Rows with targets, for ``NN``, ``cosine`` and ``euclidean``."""

    def __init__(self, method: str, params: Params, owner: str) -> None:
        self.method = method
        self.index: NearestNeighborIndex | None = None
        self.inverted: InvertedIndex | None = None
        keys = ["nearest_neighbor_num", "weight"]
        if method in ("NN", "nearest_neighbor"):
            keys += ["method", "parameter", "unlearner", "unlearner_parameter"]
        params.only(keys)
        self.count = params.integer("nearest_neighbor_num", 10 if method != "NN" else None)
        params.check(self.count >= 1, "nearest_neighbor_num", "must be >= 1")
        self.weight = params.text("weight", "uniform")
        params.check(
            self.weight in ("uniform", "distance"), "weight", "must be 'distance' or 'uniform'"
        )
        self.unlearner: Unlearner | None = None
        if method in ("NN", "nearest_neighbor"):
            self.index = create_nearest_neighbor(
                params.text("method"), params.raw("parameter"), owner, params.where("parameter")
            )
            self.unlearner = create_unlearner(params)
            if self.unlearner is not None:
                self.unlearner.forget = self._unlearn
        else:
            self.inverted = InvertedIndex(owner)
        self.values: dict[str, float] = {}
        self._random = random.Random()

    def _unlearn(self, key: str) -> None:
        if self.index is not None:
            self.index.table.delete(key)
        self.values.pop(key, None)

    def new_id(self) -> str:
        while True:
            key = "".join(self._random.choice(_ID_CHARS) for _ in range(8))
            if key not in self.values:
                return key

    def train(self, features: Features, value: float) -> None:
        key = self.new_id()
        if self.unlearner is not None and not self.unlearner.touch(key):
            raise ValueError(
                "cannot add new ID as number of sticky IDs reached the maximum size of "
                f"unlearner: {key}"
            )
        if self.index is not None:
            self.index.set_row(key, features)
        else:
            assert self.inverted is not None
            self.inverted.update_row(key, features)
        self.values[key] = value

    def estimate(self, features: Features) -> float:
        if self.index is not None:
            found = self.index.neighbor_row_from_features(features, self.count)
            same = [k for k, d in found if d == 0.0]
            weights = [1.0 / d if d else 0.0 for _, d in found]
        else:
            assert self.inverted is not None
            if self.method == "cosine":
                found = self.inverted.cosine(features, self.count)
                same = [k for k, s in found if 1.0 - s <= sys.float_info.epsilon]
                weights = [1.0 / abs(1.0 - s) if 1.0 - s else 0.0 for _, s in found]
            else:
                found = self.inverted.euclid(features, self.count)
                same = [k for k, s in found if -s <= sys.float_info.epsilon]
                weights = [1.0 / -s if s else 0.0 for _, s in found]
        if not found:
            return 0.0
        values = self.values
        if self.weight == "distance":
            if found[0][0] in same:
                total = 0.0
                taken = 0.0
                for key, _ in found:
                    if key not in same:
                        break
                    total += values.get(key, 0.0)
                    taken += 1.0
                return total / taken
            total = 0.0
            weight_sum = 0.0
            for (key, _), weight in zip(found, weights, strict=True):
                total += weight * values.get(key, 0.0)
                weight_sum += weight
            return total / weight_sum
        total = 0.0
        for key, _ in found:
            total += values.get(key, 0.0)
        return total / len(found)

    def clear(self) -> None:
        if self.index is not None:
            self.index.table.clear()
        if self.inverted is not None:
            self.inverted.clear()
        if self.unlearner is not None:
            self.unlearner.clear()
        self.values = {}

    def take_diff(self) -> dict[str, object]:
        rows = (
            self.index.table.take_diff() if self.index is not None else self.inverted.take_diff()  # type: ignore[union-attr]
        )
        return {key: [*row, self.values.get(key, 0.0)] for key, row in rows.items()}

    def apply(self, rows: dict[str, object], path: str) -> None:
        plain: dict[str, object] = {}
        targets: dict[str, float] = {}
        for key, row in read_map(rows, path).items():
            items = read_list(row, f"{path}[{key!r}]")
            if len(items) != 4:
                raise DiffError(f"{path}[{key!r}]: expected [clock, owner, row, value]")
            targets[key] = read_float(items[3], f"{path}[{key!r}][3]")
            plain[key] = items[:3]
        if self.index is not None:
            applied = self.index.table.apply_rows(plain, path)  # type: ignore[arg-type]
        else:
            assert self.inverted is not None
            applied = [key for key, _ in self.inverted.apply_rows(plain, path)]
        for key in applied:
            if self.unlearner is not None and not self.unlearner.touch(key):
                self._unlearn(key)
                continue
            self.values[key] = targets[key]

    def after_mix(self) -> None:
        if self.index is not None:
            self.index.table.forget_sent()
        elif self.inverted is not None:
            self.inverted.log.after_mix()

    def all_rows(self) -> dict[str, object]:
        if self.index is not None:
            rows: dict[str, list[object]] = self.index.table.all_rows()
        else:
            assert self.inverted is not None
            rows = {
                key: [*self.inverted.log.versions.get(key, (0, "")), self.inverted.row(key)]
                for key in self.inverted.keys
                if self.inverted.has(key)
            }
        return {key: [*row, self.values.get(key, 0.0)] for key, row in rows.items()}

    def status(self) -> dict[str, str]:
        status = {"num_rows": str(len(self.values))}
        if self.unlearner is not None:
            status.update(self.unlearner.status())
        return status


class RegressionModel:
    """A Jubatus-compatible regressor (see the module docstring)."""

    def __init__(self, config: object) -> None:
        params = engine_config(
            config, ("method", "parameter", "converter"), ("method", "converter")
        )
        self.method_name = params.text("method")
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self.linear: LinearRegressionMethod | None = None
        self.neighbors: _Neighbors | None = None
        self.weights = RegressionWeights()
        self.owner = owner_id()
        parameter = params.fields.get("parameter")
        if self.method_name in LINEAR_METHODS:
            self.linear = create_linear_method(self.method_name, parameter)
        elif self.method_name in ("NN", "nearest_neighbor", "cosine", "euclidean"):
            if parameter is None:
                raise ConfigError("parameter: required (the parameter block is not specified)")
            self._parameter = parameter
            self.neighbors = self._new_neighbors()
        else:
            known = ", ".join([*LINEAR_METHODS, "NN", "nearest_neighbor", "cosine", "euclidean"])
            raise ConfigError(f"method: unknown method {self.method_name!r} (known: {known})")
        self._version = 0

    def _new_neighbors(self) -> _Neighbors:
        return _Neighbors(self.method_name, Params(self._parameter, "parameter"), self.owner)

    # -- the service's calls ---------------------------------------------------------------

    def _features(self, datum: DatumLike, where: str, update: bool) -> Features:
        try:
            if update:  # (train checked every datum before it learned any)
                return self.converter.convert_and_update(datum, checked=True)
            return self.converter.convert(datum)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{where}: {error}") from None

    def train(self, data: Sequence[tuple[float, DatumLike]]) -> int:
        """Learn each ``(target, datum)`` in order; returns how many were trained.

        Every datum is checked first: a bad one raises ``ValueError`` and nothing is learned.
        """
        checked: list[tuple[float, DatumLike]] = []
        unchecked: Sequence[object] = data
        for i, pair in enumerate(unchecked):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError(f"train[{i}]: expected a (score, datum) pair")
            value, datum = pair
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"train[{i}]: the score must be a number")
            try:
                target = float(value)
            except OverflowError:  # an integer past the largest double
                target = math.inf
            if not math.isfinite(target):
                raise ValueError(f"train[{i}]: the score must be finite, got {target}")
            try:
                self.converter.check(datum)
                self.converter.check_storable(datum)
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"train[{i}]: {error}") from None
            checked.append((target, datum))
        for i, (value, datum) in enumerate(checked):
            features = self._features(datum, f"train[{i}]", update=True)
            if self.linear is not None:
                self.linear.train(self.weights, features, value)
            else:
                assert self.neighbors is not None
                self.neighbors.train(features, value)
        return len(checked)

    def estimate(self, data: Sequence[DatumLike]) -> list[float]:
        """The estimate for each datum."""
        results = []
        for i, datum in enumerate(data):
            features = self._features(datum, f"estimate[{i}]", update=False)
            if self.linear is not None:
                results.append(self.weights.estimate(features))
            else:
                assert self.neighbors is not None
                results.append(self.neighbors.estimate(features))
        return results

    def clear(self) -> bool:
        """Forget everything learned (the version stays, as in Jubatus)."""
        self.weights.clear()
        if self.linear is not None:
            self.linear.clear()
        if self.neighbors is not None:
            self.neighbors.clear()
        self.converter.weights.clear()
        return True

    def get_status(self, standalone: bool = False) -> dict[str, str]:
        """Jubatus's status keys for a regression server (a standalone one's linear storage
        is Jubatus's ``local_storage``, a cluster member's ``local_storage_mixture``)."""
        status: dict[str, str] = {"method": self.method_name}
        if self.linear is not None:
            weights = self.weights
            status["num_classes"] = "1" if weights.master or weights.diff else "0"
            status |= storage_status(
                standalone,
                every=len(weights.master.keys() | weights.diff.keys()),
                master=len(weights.master),
                diff=len(weights.diff),
                version=self._version,
            )
        else:
            assert self.neighbors is not None
            status.update(self.neighbors.status())
            status["model_version"] = str(self._version)
        status.update(self.converter.weights.status())
        status["weight_manager_version"] = str(self._version)
        return status

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        payload: dict[str, object] = {
            "version": self._version,
            "weights": self.converter.weights.pack(),
        }
        if self.linear is not None:
            payload["linear"] = {
                "master": self.weights.master,
                "diff": self.weights.diff,
                "state": self.linear.state(),
            }
        else:
            assert self.neighbors is not None
            rows = self.neighbors.all_rows()
            unlearner = self.neighbors.unlearner
            payload["rows"] = {
                "rows": rows,
                "unlearner": unlearner.pack() if unlearner is not None else None,
            }
        return payload

    def unpack(self, payload: object) -> None:
        """Replace the model with :meth:`pack`'s output; ``ModelFileError`` leaves it as it was."""
        kind = "linear" if self.linear is not None else "rows"
        try:
            fields = read_fields(payload, "model", ("version", "weights", kind))
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
            if self.linear is not None:
                part = read_fields(fields["linear"], "model.linear", ("master", "diff", "state"))
                master = read_table(part["master"], "model.linear.master")
                diff = read_table(part["diff"], "model.linear.diff")
                state = [
                    read_float(v, "model.linear.state")
                    for v in read_list(part["state"], "model.linear.state")
                ]
                self.weights.replace(master, diff)
                self.linear.clear()
                if state:
                    self.linear.set_state(state)
            else:
                assert self.neighbors is not None
                part = read_fields(fields["rows"], "model.rows", ("rows", "unlearner"))
                fresh = self._new_neighbors()
                fresh.apply(read_map(part["rows"], "model.rows.rows"), "model.rows.rows")
                if fresh.unlearner is not None and part["unlearner"] is not None:
                    fresh.unlearner.unpack(part["unlearner"], "model.rows.unlearner")
                self.neighbors = fresh
        except DiffError as error:
            raise ModelFileError(f"regression model does not fit: {error}") from None
        self.converter.weights = weights
        self._version = version

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        diff: dict[str, object] = {
            "version": self._version,
            "weights": self.converter.weights.take_diff(),
        }
        if self.linear is not None:
            diff["linear"] = self.weights.take_diff()
            diff["count"] = 1
        else:
            assert self.neighbors is not None
            diff["rows"] = self.neighbors.take_diff()
        return diff

    def mix(self, lhs: object, rhs: object) -> object:
        def combine(left: dict[str, object], right: dict[str, object]) -> dict[str, object]:
            out: dict[str, object] = {
                "weights": mix_keyword_weights(left.get("weights"), right.get("weights"), "weights")
            }
            if self.linear is not None:
                left_count = read_int(left.get("count"), "lhs.count")
                right_count = read_int(right.get("count"), "rhs.count")
                out["linear"] = mix_tables(
                    read_table(left.get("linear"), "lhs.linear"),
                    left_count,
                    read_table(right.get("linear"), "rhs.linear"),
                    right_count,
                )
                out["count"] = left_count + right_count
            else:
                out["rows"] = merge_rows(left.get("rows"), right.get("rows"), "rows")
            return out

        return mix_versioned(lhs, rhs, combine)

    def put_diff(self, mixed: object) -> bool:
        fields = read_map(mixed, "diff")
        version = read_int(fields.get("version"), "diff.version")
        if version != self._version:
            return False
        weights = KeywordWeights.from_plain(fields.get("weights"), "diff.weights")
        if self.linear is not None:
            table: Table = read_table(fields.get("linear"), "diff.linear")
            self.weights.apply_mixed(table)
        else:
            assert self.neighbors is not None
            self.neighbors.apply(read_map(fields.get("rows"), "diff.rows"), "diff.rows")
            self.neighbors.after_mix()
        self.converter.weights.apply_mixed(weights)
        self._version += 1
        return True

    def get_model(self) -> object:
        return {"version": self._version, "model": self.pack()}

    def set_model(self, model: object) -> None:
        """Become a copy of a peer's model; everything copied counts as mixed."""
        fields = read_fields(model, "model", ("version", "model"))
        version = read_int(fields["version"], "model.version")
        try:
            self.unpack(fields["model"])
        except ModelFileError as error:
            raise DiffError(str(error)) from None
        self.weights.apply_mixed(self.weights.take_diff())
        manager = self.converter.weights
        manager.apply_mixed(manager.diff.copy())
        self._version = version
