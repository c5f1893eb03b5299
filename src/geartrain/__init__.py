"""geartrain: a Gearman-compatible job server, client and worker library, and tools."""

from geartrain.errors import GearmanError, ProtocolError, ServerError

__version__ = "0.1.0"

__all__ = ["GearmanError", "ProtocolError", "ServerError", "__version__"]
