"""`python -m puppet.live`: the command lives in puppet.live.app."""

from puppet.errors import run_cli
from puppet.live.app import main

if __name__ == "__main__":
    run_cli(main)
