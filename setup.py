"""Packaging beside setup.cfg. With NOTIFIER_COMPILE=1 mypyc compiles the modules every live delivery runs through.

Why: the gateway's Python time per delivery halves. `python -m bench.delivery_cost 1000 300 --ticker
--cold` (the Python side alone) read 1.38-1.77 us pure, 0.30-0.89 compiled; in the bench's fan-out
at 50 ev/s the gateway's user time went from 4.80-5.10 to 2.50-3.23 us per delivery, and its CPU
per delivery from 1.24-1.30x the coalescing ceiling's to 1.09-1.13x (same run; docs/benchmarks/
README.md, thirteenth session). The same sources run as pure Python when not compiled (an editable
install, the tests by default): compiled or not is a build choice, never a behaviour, and
`.ci/run` runs the fast suite on both.

What a compiled module must keep to (mypyc's rules, each met once the hard way):
- no msgspec type defined in it: a `Struct` defined there stops decoding (`fanout/subscription_options.py`);
- class constants read from the class annotated `ClassVar` (else they become instance attributes);
- a class compiled here is subclassed only in a compiled module (`trading_frames.py` is listed for that);
- arguments are checked against their annotations where those name a built-in or a compiled class: a
  `bytes` parameter refuses a bytearray, an `OutgoingEvent` one a look-alike (the tests pass real ones).
"""

import os

from setuptools import setup

# The per-delivery path, in data-flow order: matched in the index, offered by the hub, framed,
# limited and queued by the session's live half, written by the transport's writer.
COMPILED_MODULES = [
    "notifier/fanout/channel_index.py",
    "notifier/fanout/hub.py",
    "notifier/fanout/frames.py",
    "notifier/fanout/trading_frames.py",  # subclasses frames.SseFraming
    "notifier/fanout/delivery.py",
    "notifier/fanout/rate_limit.py",
    "notifier/fanout/outbox.py",
    "notifier/transport/writer.py",
]


def extensions() -> list:
    """The mypyc extensions when NOTIFIER_COMPILE=1, else none (pure Python)."""
    if os.environ.get("NOTIFIER_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    # One shared library for all of them (their native classes call each other directly), named, not hashed.
    return mypycify(COMPILED_MODULES, opt_level="3", group_name="notifier_delivery")


setup(ext_modules=extensions())
