"""`python -m puppet.train`: the command lives in puppet.training.train."""

from puppet.errors import run_cli
from puppet.training.train import main

if __name__ == "__main__":
    run_cli(main)
