"""What may start now: slots, per-host caps, request and byte rates, host pauses.

Nothing here knows HTTP or files.  The run asks these limits for permission
to start a download and to move bytes; a transfer only ever sees a callable.
"""

from .adaptive import AdaptiveLimit
from .gate import Gate, LocalGate, Slot
from .hosts import Closed, HostLimits, HostPermit
from .kinds import ADAPTIVE, CLUSTER, HOST_CAP, HOST_RATE, PAUSED, RATE, SHARED, SLOTS
from .paces import HostPace
from .rate import TokenBucket

__all__ = [
    "ADAPTIVE",
    "CLUSTER",
    "HOST_CAP",
    "HOST_RATE",
    "PAUSED",
    "RATE",
    "SHARED",
    "SLOTS",
    "AdaptiveLimit",
    "Closed",
    "Gate",
    "HostLimits",
    "HostPace",
    "HostPermit",
    "LocalGate",
    "Slot",
    "TokenBucket",
]
