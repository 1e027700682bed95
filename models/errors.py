"""The base error of every package in this project.

It lives here, in the bottom package (`models` imports nothing of ours), so that every package can raise it
without importing one above it. `puppet.errors` re-exports it and turns it into a one-line message at the
command line.
"""


class PuppetError(Exception):
    """An error meant for the user: its message is one line that names the file or device and the fix."""
