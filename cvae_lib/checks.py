"""One-line self-checks for the from-scratch exercise.

Introduced in 06_recode_from_scratch. Each check feeds the student's code controlled inputs and
either prints a short OK or raises ``CheckFailure``: an ``AssertionError`` whose message names
the mistake in the student's terms and says what to write instead, and whose ``label`` is a
short name of the mistake for grading tools. ``MISTAKES`` lists every label.

Any correct convention passes: ``forward`` taking integer labels or one-hot rows, layers as
separate ``nn.Linear``s or in ``nn.Sequential``, ``reparameterize`` as a method or a function,
the BCE from ``F.binary_cross_entropy`` or by hand, the KL in closed form or from
``torch.distributions``. The checks run under a fixed seed and leave the caller's random state
as it was.
"""

from cvae_lib.check_base import MISTAKES, CheckFailure
from cvae_lib.check_functions import check_cvae_loss, check_reparameterize
from cvae_lib.check_model import check_simple_cvae

__all__ = ["MISTAKES", "CheckFailure", "check_cvae_loss", "check_reparameterize",
           "check_simple_cvae"]
