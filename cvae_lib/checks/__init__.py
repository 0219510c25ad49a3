"""The exercise checks: one line each in notebook 06, and the grader's columns.

Each check feeds a student's code controlled inputs and prints OK or raises ``CheckFailure``,
whose message names the mistake and its fix; ``MISTAKES`` lists every mistake's label.
"""

from cvae_lib.checks.base import MISTAKES, CheckFailure
from cvae_lib.checks.loss import check_cvae_loss
from cvae_lib.checks.model import check_simple_cvae
from cvae_lib.checks.sampler import check_reparameterize

__all__ = ["MISTAKES", "CheckFailure", "check_cvae_loss", "check_reparameterize",
           "check_simple_cvae"]
