"""Which checkpoints the audit re-evaluates."""

import pytest

from scpo.audit import parse_iterations
from scpo.errors import InvalidInputError


def test_parse_iterations():
    saved = [0, 1, 2, 5, 9]
    assert parse_iterations(None, saved) == saved
    assert parse_iterations("all", saved) == saved
    assert parse_iterations("0,2-6,last", saved) == [0, 2, 5, 9]
    assert parse_iterations([1, 5], saved) == [1, 5]
    assert parse_iterations("1-9:4", saved) == [1, 5, 9] and parse_iterations("0-9:2,last", saved) == [0, 2, 9]
    with pytest.raises(InvalidInputError, match="no checkpoint saved for iteration 3; saved nearby: 0, 1, 2, 5, 9"):
        parse_iterations("3", saved)
    with pytest.raises(InvalidInputError, match="no checkpoint saved in the range 6-8"):
        parse_iterations("6-8", saved)
    with pytest.raises(InvalidInputError, match="expected a comma-separated list"):
        parse_iterations("1..3", saved)
