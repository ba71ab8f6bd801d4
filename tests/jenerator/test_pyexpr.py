from jenerator.pyexpr import LINE_LIMIT, call, flat, layout, tuple_of


def test_flat_forms() -> None:
    assert flat(call("f")) == "f()"
    assert flat(call("f", "a", call("g", "b"))) == "f(a, g(b))"
    assert flat(tuple_of("a")) == "(a,)"
    assert flat(tuple_of()) == "()"
    assert flat(tuple_of("a", "b")) == "(a, b)"


def test_short_expression_stays_on_one_line() -> None:
    assert layout(call("f", "a"), indent=1, lead="x = ") == "    x = f(a)"


def test_long_expression_is_exploded_within_the_limit() -> None:
    expr = call("outer", *(call("inner_function_name", f"argument_{i}") for i in range(8)))
    text = layout(expr, indent=1, lead="value = ", trail=",")
    lines = text.split("\n")
    assert len(lines) == 10
    assert lines[0] == "    value = outer("
    assert lines[-1] == "    ),"
    assert all(len(line) <= LINE_LIMIT for line in lines)
    assert all(line.endswith(",") for line in lines[1:])
