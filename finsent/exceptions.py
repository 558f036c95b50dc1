"""finsent's error root: the CLI turns any of these into one clear line and exit code 2.

Each room keeps its own ``exceptions.py`` whose root subclasses nothing from here (rooms do
not import ``finsent``); the CLI catches them by the tuple in ``finsent.cli.USER_ERRORS``.
"""


class FinsentError(Exception):
    """A problem the user can fix (bad argument, bad file, missing model, taken port)."""
