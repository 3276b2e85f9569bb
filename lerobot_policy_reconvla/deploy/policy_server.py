"""LeRobot's async inference policy server, opened to ReconVLA.

LeRobot 0.6.1's policy server (``lerobot.async_inference.policy_server``) refuses, on every
``SendPolicyInstructions``, any policy type missing from ``lerobot.async_inference.constants.
SUPPORTED_POLICIES``, a plain list that the server module imports by reference. Past that check it
builds the policy with ``get_policy_class``, which already finds registered plugins. So the one change
needed is to add ``"reconvla"`` and ``"reconvla_pi05"`` to that list, in place, when the plugin is imported
(:func:`allow_reconvla_in_policy_server`, called from the package's ``__init__``). Nothing else of the
server is touched.

The server script itself, unlike LeRobot's robot client and ``lerobot-*`` commands, does not import
plugins. This module's ``main`` does what those do (``register_third_party_plugins``) and then runs
LeRobot's own ``serve`` with the same command-line flags::

    python -m lerobot_policy_reconvla.deploy.policy_server --host=127.0.0.1 --port=8080 --fps=30
"""

from lerobot.utils.import_utils import _grpc_available

POLICY_TYPES = ("reconvla", "reconvla_pi05")


def allow_reconvla_in_policy_server() -> None:
    """Adds ``reconvla`` and ``reconvla_pi05`` to LeRobot's async-inference policy allow-list (no-op
    without the async extra).

    The list is extended in place because the server module holds a reference to it
    (``from .constants import SUPPORTED_POLICIES``); rebinding the name would not reach the server.
    ``tests/test_deploy.py`` fails if LeRobot changes this mechanism.
    """
    if not _grpc_available:  # lerobot.async_inference requires grpcio on import (the `async` extra)
        return
    from lerobot.async_inference import constants

    supported = getattr(constants, "SUPPORTED_POLICIES", None)
    if isinstance(supported, list):
        supported.extend(policy_type for policy_type in POLICY_TYPES if policy_type not in supported)


def main() -> None:
    """``python -m lerobot_policy_reconvla.deploy.policy_server``: LeRobot's policy server with plugins
    imported."""
    from lerobot.utils.import_utils import register_third_party_plugins

    # `python -m` has already imported this package (so `reconvla` is allowed); this imports any other
    # installed plugin too, as LeRobot's robot client does.
    register_third_party_plugins()

    from lerobot.async_inference.policy_server import serve

    serve()


if __name__ == "__main__":
    main()
