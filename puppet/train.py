"""`python -m puppet.train` and `puppet-train`: the command lives in puppet.training.train."""

from puppet.errors import run_cli
from puppet.training.train import main


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
