"""`python -m puppet.prepare`: the command lives in puppet.data.prepare."""

from puppet.data.prepare import main
from puppet.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
