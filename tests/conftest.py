"""Fixtures shared by the unit tests."""

import os

import pytest
import torch
from hypothesis import settings

# Under CI the property tests draw the same examples every run (hypothesis' advice for CI),
# so a submission's result does not depend on luck; locally they explore new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI", "").lower() not in ("", "0", "false"):
    settings.load_profile("ci")


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one PyTorch thread.

    For modules of thousands of tiny operations, thread start-up would dominate on a busy
    machine. Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
