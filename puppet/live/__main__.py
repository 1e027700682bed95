"""`python -m puppet.live` and `puppet-live`: the command lives in puppet.live.app."""

from puppet.errors import run_cli
from puppet.live.app import main


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
