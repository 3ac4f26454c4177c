"""`notifier schema` prints the catalog, and the checked-in exports are what it prints today."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from catalog_examples import EXAMPLES, SIGNAL

from notifier.catalog.payloads import PAYLOADS

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = {"json-schema": ROOT / "docs" / "schema" / "events.schema.json",
           "typescript": ROOT / "clients" / "js" / "events.d.ts"}


def schema_command(output_format: str) -> str:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    completed = subprocess.run([sys.executable, "-m", "notifier", "schema", "--format", output_format],
                               env=environment, capture_output=True, text=True, timeout=60, check=True)
    return completed.stdout


@pytest.mark.parametrize("output_format", sorted(EXPORTS))
def test_checked_in_export_is_current(output_format):
    """The checked-in file equals `notifier schema --format ...` (regenerate it when the catalog changes)."""
    assert EXPORTS[output_format].read_text() == schema_command(output_format), (
        f"stale: run `notifier schema --format {output_format} > {EXPORTS[output_format].relative_to(ROOT)}`")


def test_json_schema_is_keyed_by_event_type():
    """The JSON Schema names every catalog type with its payload definition and an if/then rule."""
    schema = json.loads(schema_command("json-schema"))
    events = schema["x-notifier-catalog"]["events"]
    assert set(events) == set(PAYLOADS)
    assert events["signal.new"] == {"payload": "#/$defs/TradingSignal", "broadcast": False, "conflatable": False}
    assert schema["$defs"]["TradingSignal"]["properties"]["confidence"] == {"type": "number", "minimum": 0,
                                                                           "maximum": 1}
    assert {rule["if"]["properties"]["type"]["const"] for rule in schema["allOf"]} == set(PAYLOADS)


def test_typescript_is_a_union_discriminated_on_type():
    """The declarations map every catalog type to its payload interface and union them on `type`."""
    declarations = schema_command("typescript")
    for event_type, struct in PAYLOADS.items():
        assert f'  "{event_type}": {struct.__name__};' in declarations
    assert "export type CatalogEvent = { [T in CatalogType]: Envelope<T, CatalogPayloads[T]> }[CatalogType];" in \
        declarations
    assert '  direction: "BUY" | "SELL";' in declarations


def test_json_schema_accepts_what_the_gateway_accepts():
    """Every catalog example, as an envelope, is valid under the checked-in JSON Schema."""
    validator = jsonschema.Draft202012Validator(json.loads(EXPORTS["json-schema"].read_text()))
    for event_type, payload in EXAMPLES.items():
        validator.validate({"type": event_type, "key": "k", "payload": payload})


def test_json_schema_refuses_what_the_gateway_refuses():
    """A signal with confidence 1.5 is invalid under the JSON Schema, at payload/confidence."""
    validator = jsonschema.Draft202012Validator(json.loads(EXPORTS["json-schema"].read_text()))
    errors = list(validator.iter_errors({"type": "signal.new", "payload": {**SIGNAL, "confidence": 1.5}}))
    assert [list(error.absolute_path) for error in errors] == [["payload", "confidence"]]
