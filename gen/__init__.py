"""nomul generator: the network IR, loading and validation, planning, and the command line."""

from hw.dtypes import DType

from .errors import NetworkError
from .load import load_network, network_from_dict

__all__ = ["DType", "NetworkError", "load_network", "network_from_dict"]
