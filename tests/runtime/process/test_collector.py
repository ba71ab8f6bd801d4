"""The garbage collector's first threshold in a serving process: raised by
``run_on_event_loop`` so that decoding a request starts no collection, the rest left as
the process had it. Each case runs in a process of its own (the setting is global)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from runtime.process.collector import YOUNG_THRESHOLD

# A process that sets the collector as its argument says, serves a coroutine on the event
# loop, and prints the thresholds and the collections that decoding 200 requests of 300
# datums (about 2,100 lists each, one request at a time) started, before and while it
# serves.
SERVING = textwrap.dedent(
    """
    import gc, json, sys
    import msgpack
    from runtime.process.serving import run_on_event_loop

    datum = [[[b"text", b"a b c"]], [[b"x", 1.0], [b"y", 2.0], [b"z", 3.0]]]
    request = msgpack.packb([0, 1, b"classify", [b"", [datum] * 300]])

    def collections():
        started = [0]
        count = lambda phase, info: started.__setitem__(0, started[0] + (phase == "start"))
        gc.callbacks.append(count)
        for _ in range(200):  # each alive while it is decoded, as a request is
            msgpack.unpackb(request)
        gc.callbacks.remove(count)
        return started[0]

    exec(sys.argv[1])  # the process's own settings
    before = collections()

    async def main():
        print(json.dumps({
            "threshold": gc.get_threshold(), "enabled": gc.isenabled(),
            "before": before, "serving": collections(),
        }))
        return 0

    sys.exit(run_on_event_loop(main(), "asyncio"))
    """
)


def serve(settings: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SERVING, settings],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_serving_process_raises_the_first_threshold_and_decoding_starts_no_collection() -> None:
    seen = serve("gc.set_threshold(700, 11, 12)")
    assert seen["threshold"] == [YOUNG_THRESHOLD, 11, 12]
    assert seen["enabled"] is True
    assert isinstance(seen["before"], int) and seen["before"] >= 200  # with CPython's 700
    assert seen["serving"] == 0


@pytest.mark.parametrize(
    ("settings", "threshold", "enabled"),
    [
        ("gc.set_threshold(50000, 10, 10)", [50000, 10, 10], True),  # higher: kept
        ("gc.set_threshold(0)", [0, 10, 10], True),  # off by threshold: kept off
        ("gc.disable()", [YOUNG_THRESHOLD, 10, 10], False),  # off: stays off
    ],
)
def test_a_setting_of_the_process_own_is_kept(
    settings: str, threshold: list[int], enabled: bool
) -> None:
    seen = serve(settings)
    assert seen["threshold"] == threshold
    assert seen["enabled"] is enabled
