"""`python -m puppet.finetune` and `puppet-finetune`: the command lives in puppet.training.finetune."""

from puppet.errors import run_cli
from puppet.training.finetune import main


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
