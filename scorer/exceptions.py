"""The scorer room's error root: anything a user can fix (bad data file, missing model, bad device).

The CLI maps ``ScorerError`` to one line on stderr and exit code 2; library errors are wrapped
``from e`` so the cause stays in the traceback for developers.
"""


class ScorerError(Exception):
    """A scorer problem the user can fix: a bad data file, a missing model folder, no CUDA."""
