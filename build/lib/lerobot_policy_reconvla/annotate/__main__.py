"""`python -m lerobot_policy_reconvla.annotate`: the `reconvla-annotate` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
