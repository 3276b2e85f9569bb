"""ReconVLA as a LeRobot plugin policy.

LeRobot's ``register_third_party_plugins()`` imports this package by its distribution name; importing
it registers, through LeRobot's own registries:

- the ``reconvla`` policy config (``--policy.type=reconvla``, pi0 + the recon head) and ``reconvla_pi05``
  (pi05 + the same head); the policy classes and their processors are then found by LeRobot's naming
  convention (``modeling_reconvla`` / ``processor_reconvla``, ``modeling_reconvla_pi05`` /
  ``processor_reconvla_pi05``),
- the ``aloha_multicam`` env config (``--env.type=aloha_multicam``),
- the ``aloha`` / ``aloha_sim`` robots and the ``aloha_leader`` / ``aloha_scripted`` teleoperators.

Heavy modules (modeling, MuJoCo) are imported only when used.
"""

import logging

# With bitsandbytes installed (the `bnb` extra), peft imports it, and bitsandbytes warns at import that
# its optional 4-bit CPU matmul kernels (the `kernels` package) are missing. The 8-bit optimizer does not
# use them, so the warning would only repeat in every process (workers, CLI subprocesses).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .configuration_reconvla import ReconVLAConfig  # noqa: E402
from .configuration_reconvla_pi05 import ReconVLAPi05Config  # noqa: E402

# Registers ReconVLA's tokenizer step (and pi05's state step), so saved processors reload before the policy
# is built.
from .processor_reconvla import make_reconvla_pre_post_processors  # noqa: E402
from .processor_reconvla_pi05 import make_reconvla_pi05_pre_post_processors  # noqa: E402

__all__ = [
    "ReconVLAConfig",
    "ReconVLAPi05Config",
    "make_reconvla_pi05_pre_post_processors",
    "make_reconvla_pre_post_processors",
]

# Optional parts register themselves on import; each only needs LeRobot's config classes here.
from . import envs as _envs  # noqa: E402,F401
from . import robots as _robots  # noqa: E402,F401
from . import teleoperators as _teleoperators  # noqa: E402,F401

# LeRobot's async-inference policy server accepts only listed policy types: list ours (policy_server.py).
from .deploy.policy_server import allow_reconvla_in_policy_server as _allow_in_policy_server  # noqa: E402
from .training import optim as _optim  # noqa: E402,F401  (optimizer type adamw_8bit)

_allow_in_policy_server()
