"""The classifier's model in Jubatus's layout (the user data of a ``jubaclassifier`` model
file, user-data version 1), converted from and to the tables
:meth:`~engines.classifier.model.ClassifierModel.pack` gives and
:meth:`~engines.classifier.model.ClassifierModel.unpack` takes.

The linear methods (jubatus_core's ``driver::classifier`` over ``linear_classifier``)::

    [[storage, labels], weight_manager]
    storage = [tbl, class2id, tbl_diff, model_version, jubako]

(the pieces are described in :mod:`engines.common.jubatus_file`). ``tbl`` holds, per
feature and label, what the model scores with: the weight (master + unmixed diff) as
``v1`` and, for CW, AROW and NHERD, the variance as ``v2`` (1 where the model has none,
as Jubatus reads a missing one); ``tbl_diff`` is empty. So Jubatus reads the same model
whether its server is standalone (its ``local_storage`` reads ``tbl`` only) or in a
cluster (``local_storage_mixture`` adds ``tbl_diff``). The label table and the weight
manager keep master and diff apart in Jubatus's own fields.

``jubako``, a fifth element Jubatus and ``jubadump`` skip, keeps what Jubako holds beyond
that, so a file Jubako saved loads back exactly: ``{"jubako": 1, "trained": examples
trained since the last mix, "diff": {label: {feature: [weight, variance]}}, "master":
{label: {feature: [weight, variance]}}}``, where ``diff`` holds the unmixed part of every
value that has one and ``master`` the mixed part of those values only (``nil`` where a
part is missing); every other value of ``tbl`` is all master. A file without it (one
Jubatus saved) loads ``tbl`` as master and ``tbl_diff`` as the unmixed diff, as
``local_storage_mixture`` reads them.

Jubatus counts document frequencies for every feature when a rule weighs by idf, Jubako
only for the idf-weighted ones (the only ones that weigh anything): a file from Jubatus
keeps its other counts, unused.

The neighbour methods (:func:`neighbor_to_jubatus`): ``NN`` is ``[[table, labels],
weight_manager]`` (``nearest_neighbor_classifier``; the unlearner first when there is one),
the table a column table of the rows' hash bits; ``cosine`` and ``euclidean`` are
``[[inverted index, labels], weight_manager]`` (``inverted_index_classifier``); the pieces
are in :mod:`engines.common.jubatus_tables`. Label counts are written as master.
"""

from __future__ import annotations

from collections.abc import Mapping

from engines.common.jubatus_file import (
    LinearTable,
    pack_key_manager,
    pack_labels,
    pack_linear_table,
    pack_version,
    pack_weight_manager,
    read_count,
    read_key_manager,
    read_labels,
    read_linear_table,
    read_number,
    read_struct,
    read_version,
    read_weight_manager,
)
from engines.common.jubatus_tables import (
    nn_columns,
    pack_column_table,
    pack_inverted_index,
    pack_unlearner,
    read_column_table,
    read_inverted_index,
    read_unlearner,
    rows_table,
    table_rows,
)
from engines.common.neighbor_classifier import NeighborClassifierModel
from runtime.mix.mixable import DiffError, read_int, read_list, read_map

#: label -> feature -> value (the tables of ClassifierModel.pack).
Table = dict[str, dict[str, float]]

#: The version of the trailing ``jubako`` element's layout.
EXTRA_VERSION = 1


def _table(value: object) -> Table:
    assert isinstance(value, dict)
    return value


def linear_to_jubatus(packed: object, uses_variance: bool) -> list[object]:
    """``ClassifierModel.pack()``'s tables as Jubatus's user data (see the module doc)."""
    assert isinstance(packed, dict)
    model: Mapping[str, object] = packed
    weights = model["weights"]
    variances = model["variances"]
    labels = model["labels"]
    documents = model["documents"]
    assert isinstance(weights, dict) and isinstance(variances, dict)
    assert isinstance(labels, dict) and isinstance(documents, dict)
    wm, wd = _table(weights["master"]), _table(weights["diff"])
    vm, vd = _table(variances["master"]), _table(variances["diff"])
    counts: dict[str, int] = labels["counts"]
    diff_counts: dict[str, int] = labels["diff"]
    names = sorted({*counts, *diff_counts, *wm, *wd, *vm, *vd})
    ids = {label: i for i, label in enumerate(names)}
    table: LinearTable = {}
    extra_diff: dict[str, dict[str, list[float | None]]] = {}
    extra_master: dict[str, dict[str, list[float | None]]] = {}
    for label in names:
        m_w, d_w = wm.get(label, {}), wd.get(label, {})
        m_v, d_v = vm.get(label, {}), vd.get(label, {})
        for feature in dict.fromkeys([*m_w, *d_w, *m_v, *d_v]):
            w_m, w_d = m_w.get(feature), d_w.get(feature)
            v_m, v_d = m_v.get(feature), d_v.get(feature)
            # what the model scores with (engines.common.storage: W and V)
            weight = (0.0 if w_m is None else w_m) + (0.0 if w_d is None else w_d)
            variance = 0.0
            if uses_variance:
                if v_m is None and v_d is None:
                    variance = 1.0
                else:
                    variance = (v_m or 0.0) + (v_d or 0.0)
            table.setdefault(feature, {})[label] = (weight, variance)
            if w_d is not None or v_d is not None:
                extra_diff.setdefault(label, {})[feature] = [w_d, v_d]
                if w_m is not None or v_m is not None:
                    extra_master.setdefault(label, {})[feature] = [w_m, v_m]
    version = model["version"]
    trained = model["count"]
    assert isinstance(version, int) and isinstance(trained, int)
    storage = [
        pack_linear_table(table, ids),
        pack_key_manager(names),
        {},
        pack_version(version),
        {"jubako": EXTRA_VERSION, "trained": trained, "diff": extra_diff, "master": extra_master},
    ]
    master_counts = {label: counts.get(label, 0) - diff_counts.get(label, 0) for label in counts}
    label_table = pack_labels(
        {label: n for label, n in master_counts.items() if n > 0 or label not in diff_counts},
        {label: n for label, n in diff_counts.items() if label in counts},
        version,
    )
    master_docs, diff_docs = documents["master"], documents["diff"]
    assert isinstance(master_docs, dict) and isinstance(diff_docs, dict)
    groups = model.get("groups") or {"master": {}, "diff": {}}
    assert isinstance(groups, dict)
    return [
        [storage, label_table],
        pack_weight_manager(
            version,
            _weights(master_docs, groups["master"]),
            _weights(diff_docs, groups["diff"]),
        ),
    ]


def _weights(
    documents: Mapping[str, object], groups: Mapping[str, list[float]]
) -> dict[str, object]:
    return {
        "document_count": documents["documents"],
        "document_frequencies": documents["frequencies"],
        "group_frequencies": {group: pair[0] for group, pair in groups.items()},
        "group_total_lengths": {group: pair[1] for group, pair in groups.items()},
    }


def linear_from_jubatus(payload: object, uses_variance: bool) -> dict[str, object]:
    """Jubatus's user data of a linear classifier as ``ClassifierModel.unpack()`` takes it;
    raises :class:`~runtime.mix.mixable.DiffError`."""
    driver = read_list(payload, "model")
    if len(driver) != 2:
        raise DiffError(f"model: expected [classifier, weight_manager], got {len(driver)} parts")
    part = read_list(driver[0], "model[0]")
    if len(part) != 2:
        raise DiffError(
            "model[0]: expected [storage, labels] (a linear classifier without an unlearner), "
            f"got {len(part)} parts"
        )
    storage = read_list(part[0], "model[0][0]")
    tbl, class2id, tbl_diff, model_version = read_struct(storage, "model[0][0]", 4)
    labels = read_key_manager(class2id, "model[0][0][1]")
    master = read_linear_table(tbl, labels, "model[0][0][0]")
    diff = read_linear_table(tbl_diff, labels, "model[0][0][2]")
    version = read_version(model_version, "model[0][0][3]")
    extra = storage[4] if len(storage) > 4 else None
    tables: dict[str, Table] = {"WM": {}, "WD": {}, "VM": {}, "VD": {}}
    trained = 0
    if isinstance(extra, dict) and _is_extra(extra):
        if diff:
            raise DiffError("model[0][0][2]: a diff table beside Jubako's own diff")
        fields = read_map(extra, "model[0][0][4]")
        trained = read_int(fields.get("trained", 0), "model[0][0][4].trained")
        exact_diff = _read_pairs(fields.get("diff", {}), "model[0][0][4].diff")
        exact_master = _read_pairs(fields.get("master", {}), "model[0][0][4].master")
        for feature, row in master.items():
            for label, (weight, variance) in row.items():
                pair = exact_diff.get(label, {}).get(feature)
                if pair is None:
                    _put(tables, "M", label, feature, weight, variance, uses_variance)
                    continue
                _put_pair(tables, "D", label, feature, pair)
                below = exact_master.get(label, {}).get(feature)
                if below is not None:
                    _put_pair(tables, "M", label, feature, below)
    else:
        for feature, row in master.items():
            for label, (weight, variance) in row.items():
                _put(tables, "M", label, feature, weight, variance, uses_variance)
        for feature, row in diff.items():
            for label, (weight, variance) in row.items():
                _put(tables, "D", label, feature, weight, variance, uses_variance)
    master_counts, diff_counts, _ = read_labels(part[1], "model[0][1]")
    counts = dict(master_counts)
    for label, n in diff_counts.items():
        counts[label] = counts.get(label, 0) + n
    for label in labels.values():
        counts.setdefault(label, 0)
    _, master_weights, diff_weights = read_weight_manager(driver[1], "model[1]")
    packed: dict[str, object] = {
        "version": version,
        "count": trained,
        "weights": {"master": tables["WM"], "diff": tables["WD"]},
        "variances": {"master": tables["VM"], "diff": tables["VD"]},
        "labels": {"counts": counts, "diff": diff_counts},
        "documents": {
            "master": _documents(master_weights, "model[1][2]"),
            "diff": _documents(diff_weights, "model[1][1]"),
        },
    }
    groups = {"master": _groups(master_weights), "diff": _groups(diff_weights)}
    if groups["master"] or groups["diff"]:
        packed["groups"] = groups
    return packed


def _groups(weights: Mapping[str, object]) -> dict[str, list[float]]:
    """bm25's counts per group from a keyword weights part, as ``{group: [documents,
    summed length]}`` (a group in one table only counts 0 in the other)."""
    frequencies = weights["group_frequencies"]
    lengths = weights["group_total_lengths"]
    assert isinstance(frequencies, dict) and isinstance(lengths, dict)
    return {
        group: [float(frequencies.get(group, 0.0)), float(lengths.get(group, 0.0))]
        for group in dict.fromkeys([*frequencies, *lengths])
    }


def _is_extra(extra: dict[object, object]) -> bool:
    marker = extra.get(b"jubako", extra.get("jubako"))
    return marker == EXTRA_VERSION


def _put(
    tables: dict[str, Table],
    part: str,
    label: str,
    feature: str,
    weight: float,
    variance: float,
    uses_variance: bool,
) -> None:
    tables["W" + part].setdefault(label, {})[feature] = weight
    if uses_variance:
        tables["V" + part].setdefault(label, {})[feature] = variance


def _put_pair(
    tables: dict[str, Table], part: str, label: str, feature: str, pair: list[float | None]
) -> None:
    weight, variance = pair
    if weight is not None:
        tables["W" + part].setdefault(label, {})[feature] = weight
    if variance is not None:
        tables["V" + part].setdefault(label, {})[feature] = variance


def _read_pairs(value: object, path: str) -> dict[str, dict[str, list[float | None]]]:
    out: dict[str, dict[str, list[float | None]]] = {}
    for label, row in read_map(value, path).items():
        entries: dict[str, list[float | None]] = {}
        for feature, pair in read_map(row, f"{path}[{label!r}]").items():
            where = f"{path}[{label!r}][{feature!r}]"
            items = read_list(pair, where)
            if len(items) != 2:
                raise DiffError(f"{where}: expected [weight, variance]")
            entries[feature] = [
                None if item is None else read_number(item, f"{where}[{i}]")
                for i, item in enumerate(items)
            ]
        out[label] = entries
    return out


def _documents(weights: Mapping[str, object], path: str) -> dict[str, object]:
    frequencies = weights["document_frequencies"]
    assert isinstance(frequencies, dict)
    return {
        "documents": weights["document_count"],
        "frequencies": {
            feature: read_count(n, f"{path}[1][0][{feature!r}]")
            for feature, n in frequencies.items()
            if n
        },
    }


# -- the neighbour methods -----------------------------------------------------------------


def neighbor_to_jubatus(model: NeighborClassifierModel) -> list[object]:
    """A neighbour classifier's model in Jubatus's layout (see the module docstring)."""
    packed = model.pack()
    assert isinstance(packed, dict)
    core, weights = packed["core"], packed["weights"]
    index = model.core.index
    if index is not None:
        rows = table_rows(core["rows"])
        table = pack_column_table(
            rows, core["rows"]["clock"], nn_columns(index.name, index.hash_num)
        )
    else:
        table = pack_inverted_index(core["rows"])
    part: list[object] = [table, pack_labels(core["labels"], {}, packed["version"])]
    unlearner = model.core.unlearner
    if unlearner is not None and core["unlearner"] is not None:
        part.insert(0, pack_unlearner(unlearner.name, core["unlearner"]))
    return [part, pack_weight_manager(packed["version"], weights["master"], weights["diff"])]


def neighbor_from_jubatus(payload: object, model: NeighborClassifierModel) -> dict[str, object]:
    """Jubatus's user data of a neighbour classifier as ``model.unpack()`` takes it."""
    driver = read_list(payload, "model")
    if len(driver) != 2:
        raise DiffError(f"model: expected [classifier, weight_manager], got {len(driver)} parts")
    part = read_list(driver[0], "model[0]")
    unlearner = model.core.unlearner
    unlearned = None
    if unlearner is not None:
        if len(part) != 3:
            raise DiffError("model[0]: expected [unlearner, rows, labels]")
        unlearned = read_unlearner(unlearner.name, part[0], "model[0][0]")
        if unlearned.get("random", 0) is None:
            current = unlearner.pack()
            assert isinstance(current, dict)
            unlearned["random"] = current["random"]
        part = part[1:]
    if len(part) != 2:
        raise DiffError(f"model[0]: expected [rows, labels], got {len(part)} parts")
    index = model.core.index
    if index is not None:
        rows, clock = read_column_table(
            part[0], nn_columns(index.name, index.hash_num), "model[0][0]"
        )
        table: object = rows_table(rows, clock)
    else:
        table = read_inverted_index(part[0], "model[0][0]")
    master, diff, _ = read_labels(part[1], "model[0][1]")
    counts = dict(master)
    for label, n in diff.items():
        counts[label] = counts.get(label, 0) + n
    version, master_weights, diff_weights = read_weight_manager(driver[1], "model[1]")
    return {
        "version": version,
        "core": {"rows": table, "labels": counts, "unlearner": unlearned},
        "weights": {"master": master_weights, "diff": diff_weights},
    }


__all__ = [
    "linear_from_jubatus",
    "linear_to_jubatus",
    "neighbor_from_jubatus",
    "neighbor_to_jubatus",
]
