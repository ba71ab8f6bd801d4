"""The engines' optional ``"jubako"`` config block (the snapshot model's options), fed
garbage: each bad value is a ConfigError naming its key, and the server is not built."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engines.classifier.classifier_serv import ClassifierServ
from engines.stat.stat_serv import StatServ
from runtime import ConfigError

CLASSIFIER: dict[str, Any] = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}
STAT: dict[str, Any] = {"window_size": 10}

BAD: list[tuple[object, str]] = [
    ("fast", "jubako: expected an object"),
    ([], "jubako: expected an object"),
    ({"bufer_size": 10}, "jubako.bufer_size"),
    ({"buffer_size": 0}, "jubako.buffer_size: a positive integer"),
    ({"buffer_size": -3}, "jubako.buffer_size: a positive integer"),
    ({"buffer_size": 2.5}, "jubako.buffer_size: a positive integer"),
    ({"buffer_size": True}, "jubako.buffer_size: a positive integer"),
    ({"buffer_size": "10"}, "jubako.buffer_size: a positive integer"),
    ({"wait_timeout": -1}, "jubako.wait_timeout: seconds"),
    ({"wait_timeout": float("nan")}, "jubako.wait_timeout: seconds"),
    ({"wait_timeout": None}, "jubako.wait_timeout: seconds"),
    ({"publish_interval": "soon"}, "jubako.publish_interval: seconds"),
    ({"inline_weight": -1}, "jubako.inline_weight: an integer >= 0"),
    ({"inline_weight": 1.5}, "jubako.inline_weight: an integer >= 0"),
    ({"inline_weight": False}, "jubako.inline_weight: an integer >= 0"),
]


@pytest.mark.parametrize(("serv", "config", "update"), [
    (ClassifierServ, CLASSIFIER, "train"), (StatServ, STAT, "push"),
])  # fmt: skip
@pytest.mark.parametrize(("block", "message"), BAD)
def test_a_bad_jubako_block_names_its_key(
    serv: type[ClassifierServ | StatServ], config: dict[str, Any], update: str,
    block: object, message: str,
) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        serv(json.dumps({**config, "jubako": block}))


@pytest.mark.parametrize(("serv", "config", "update"), [
    (ClassifierServ, CLASSIFIER, "train"), (StatServ, STAT, "push"),
])  # fmt: skip
def test_the_update_mode_is_applied_or_queued(
    serv: type[ClassifierServ | StatServ], config: dict[str, Any], update: str
) -> None:
    with pytest.raises(ConfigError, match=rf"jubako\.{update}: 'applied' or 'queued'"):
        serv(json.dumps({**config, "jubako": {update: "later"}}))
    built = serv(json.dumps({**config, "jubako": {update: "queued", "buffer_size": 8}}))
    assert isinstance(built, serv)


@pytest.mark.parametrize(("serv", "config"), [(ClassifierServ, CLASSIFIER), (StatServ, STAT)])
def test_inline_weight_defaults_to_16_and_0_turns_it_off(
    serv: type[ClassifierServ | StatServ], config: dict[str, Any]
) -> None:
    on = serv(json.dumps(config)).holder
    assert on is not None and on.inline_weight == 16
    off = serv(json.dumps({**config, "jubako": {"inline_weight": 0}})).holder
    assert off is not None and off.inline_weight == 0
