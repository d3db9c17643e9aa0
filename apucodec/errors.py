"""One exception type for every problem a user can fix (bad input, missing extra, wrong model directory).

The CLI turns it into a single line on stderr and a non-zero exit, so raising it is how library code says "this is
the user's input, not our bug" — anything else is a real bug and keeps its traceback.
"""


class ApucodecError(Exception):
    """A user-facing failure whose message is complete on its own line."""
