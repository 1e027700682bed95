"""`python -m puppet.finetune` and `puppet-finetune`: the command lives in puppet.training.finetune."""

import os

# OpenMP threads that sleep at barriers instead of spinning: a spinning thread on a core another program
# wants makes every small convolution wait for it (10-100x slower). Read once, when torch loads: set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from puppet.errors import run_cli  # noqa: E402
from puppet.training.finetune import main  # noqa: E402


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
