"""The ratios the bench's targets are judged on."""

from __future__ import annotations

import math

from bench.scenarios.fanout import ratio


def test_a_ratio_equal_to_its_limit_in_decimal_is_not_read_as_over_it():
    """7.68 µs against 6.40 µs, as medians of tick-counted CPU come out of floating point, is 1.2x, not more."""
    assert ratio(7.680000000000001, 6.3999999999999995) <= 1.2


def test_a_ratio_without_a_denominator_is_not_a_number():
    """Nothing measured on the other side gives NaN, which meets no target."""
    assert math.isnan(ratio(1.0, 0.0))
