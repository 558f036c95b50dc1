"""The alerts room's error root: problems a user can fix (a bad rule, an unknown rule name).

The CLI turns ``AlertsError`` into one line on stderr and exit code 2; library errors are
wrapped ``from e`` so developers keep the cause.
"""


class AlertsError(Exception):
    """An alerts problem the user can fix."""


class RuleInvalid(AlertsError):
    """A rule definition that fails validation; the message names the field and the fix."""


class RuleNotFound(AlertsError):
    """A rule named (or numbered) by the user does not exist."""
