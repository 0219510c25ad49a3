"""The exercise checks of notebook 06: each feeds a student's code controlled inputs, then prints
OK or raises ``CheckFailure`` naming the mistake (``MISTAKES``: the grader's columns)."""

from cvae_lib.checks.base import MISTAKES, CheckFailure
from cvae_lib.checks.loss import check_cvae_loss
from cvae_lib.checks.model import check_simple_cvae
from cvae_lib.checks.sampler import check_reparameterize

__all__ = ["MISTAKES", "CheckFailure", "check_cvae_loss", "check_reparameterize",
           "check_simple_cvae"]
