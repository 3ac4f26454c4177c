"""`python -m bench.gateway`: exactly `python -m notifier` (the same `notifier.cli.main`), tied to the harness.

The one difference: the process asks Linux to stop it (SIGTERM, a graceful stop that also
stops its nats-server) if the harness dies, so a killed benchmark leaves no gateway behind.
"""

from bench.machine import die_with_parent, raise_open_file_limit

if __name__ == "__main__":
    die_with_parent()
    raise_open_file_limit()
    from notifier.cli import main

    raise SystemExit(main(["serve"]))
