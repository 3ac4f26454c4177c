"""Log lines for people (`text`, the default) or for a log pipeline (`NOTIFIER_LOG_FORMAT=json`).

Events worth querying (a connection opened or closed, an auth failure, a slow close) are logged
with `log_event(logger, level, message, field=value, ...)`: the text format appends the fields
as `key=value`, the JSON format writes them as keys of the line's object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log `message` with structured fields; nothing is built when the level is off."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": fields})


class TextFormatter(logging.Formatter):
    """The classic line, with any structured fields appended as `key=value`; a worker's lines name it."""

    def __init__(self, worker: int | None = None) -> None:
        named = TEXT_FORMAT if worker is None else TEXT_FORMAT.replace("%(name)s", f"worker {worker} %(name)s")
        super().__init__(named)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields and not getattr(record, "fields_in_message", False):
            line += " " + " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return line


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, worker (of several), message, the fields, any traceback."""

    # mypy binds `self` to a function stored on a class; a builtin like gmtime is never bound at runtime.
    converter = time.gmtime  # type: ignore[assignment]

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            line["worker"] = self.worker
        fields = getattr(record, "fields", None)
        if fields:
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: str, worker: int | None = None) -> None:
    """Send every log record to stderr in the chosen format (replacing any handler set before).

    `worker`: this process's index among NOTIFIER_WORKERS, named in every line (workers share stderr).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(worker) if log_format == "json" else TextFormatter(worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
