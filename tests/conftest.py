import os
import tempfile

# OpenMP threads that spin while waiting starve the other processes on 2 cores (torchrun tests).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores in CI: keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Exports of targets made in memory are cached (puppet.artifacts): in a folder of this run, not the user's.
os.environ["PUPPET_CACHE"] = tempfile.mkdtemp(prefix="puppet-test-cache-")


@pytest.fixture(scope="session")
def grace_hopper_path():
    from puppet.assets import grace_hopper

    return grace_hopper()


@pytest.fixture(scope="session")
def astronaut_path():
    from puppet.assets import astronaut

    p = astronaut()
    assert p is not None, "scikit-image (a core dependency) provides astronaut.png"
    return p


@pytest.fixture
def logs(caplog):
    """What our packages logged during the test (INFO and up), as caplog; works after a command run in this
    process set up its own handlers (puppet.log.configure stops propagation to the root)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("puppet", "export", "bench", "models")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(caplog.handler)
        lg.setLevel(logging.INFO)
    yield caplog
    for lg, level in zip(loggers, levels):
        lg.removeHandler(caplog.handler)
        lg.setLevel(level)
