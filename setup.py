"""Packaging beside setup.cfg. With NOTIFIER_COMPILE=1 mypyc compiles the modules every live delivery runs through.

Compiled, the gateway's own CPU per delivery (hub, session, rate limit, outbox, writer) halves:
`python -m bench.delivery_cost 1000 300 --ticker --cold` 1.7 us pure, 0.3-0.9 us compiled; in the
bench's fan-out at 50 ev/s its user time fell from 4.5 to 2.4-2.7 us per delivery, the coalescing
ceiling's 2.1-2.3 (docs/benchmarks/README.md, thirteenth session). The same sources run pure
Python when not compiled (an editable install, the tests' default): compiled or not is a build
choice, never a behaviour, and `.ci/run` runs the fast suite on both.

Compiled modules hold only plain classes (no msgspec types: `fanout/subscription_options.py`),
and a class compiled here is subclassed only by a compiled module (mypyc refuses the rest).
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
