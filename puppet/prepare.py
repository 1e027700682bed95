"""`python -m puppet.prepare` and `puppet-prepare`: the command lives in puppet.data.prepare."""

from puppet.data.prepare import main
from puppet.errors import run_cli


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
