"""`python -m notifier`: run the gateway (same as `notifier serve`)."""

from notifier.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
