from jenerator import naming


def test_keywords_get_a_trailing_underscore() -> None:
    for word in ("del", "from", "class", "import", "pass", "lambda", "None", "async"):
        assert naming.python_identifier(word) == word + "_"
    for soft in ("match", "case", "type", "_"):
        assert naming.python_identifier(soft) == soft


def test_ordinary_names_are_kept() -> None:
    assert naming.python_identifier("put") == "put"
    assert naming.argument_name("id") == "id"  # keyword calls of official clients keep working
    assert naming.argument_name("self") == "self_"


def test_reserved_names_are_escaped() -> None:
    assert naming.python_identifier("get_name", naming.CLIENT_RESERVED) == "get_name_"
    assert naming.python_identifier("pack", naming.SERVER_RESERVED) == "pack_"


def test_class_names_are_camel_case() -> None:
    assert naming.class_name("estimate_result") == "EstimateResult"
    assert naming.class_name("nearest_neighbor") == "NearestNeighbor"
    assert naming.class_name("kvs") == "Kvs"
    assert naming.class_name("myMessage") == "MyMessage"
    assert naming.class_name("_x") == "X"
    assert naming.class_name("2d") == "X2d"


def test_constant_names() -> None:
    assert naming.constant_name("get_labels") == "GET_LABELS"
    assert naming.constant_name("getLabels") == "GET_LABELS"
    assert naming.module_prefix("a.b") == "a.b."
    assert naming.module_prefix(None) == ""
