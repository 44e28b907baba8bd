"""The one exception type a user can cause; the CLI turns it into one line on stderr + exit 2."""


class UserError(Exception):
    """Bad input the user can fix (a missing file, an unknown name, an unreadable model).

    The message is shown as-is, so it must say what was wrong and what to do.
    """

    exit_code = 2
