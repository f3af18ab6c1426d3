"""loyalty: a loyalty-program engine for small shops over SQLite.

The CLI (`loyalty`) is a thin shell over this library; everything it does is
callable from Python.
"""

from loyalty_cli.errors import LoyaltyError

__version__ = "0.1.0"

__all__ = ["LoyaltyError", "__version__"]
