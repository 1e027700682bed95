"""`python -m puppet.finetune`: the command lives in puppet.training.finetune."""

from puppet.errors import run_cli
from puppet.training.finetune import main

if __name__ == "__main__":
    run_cli(main)
