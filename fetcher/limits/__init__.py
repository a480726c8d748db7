"""What may start now: slots, per-host caps, request and byte rates, host pauses.

Nothing here knows HTTP or files.  The run asks these limits for permission
to start a download and to move bytes; a transfer only ever sees a callable.
"""

from .gate import Gate, LocalGate, Slot
from .hosts import Closed, HostLimits, HostPermit
from .kinds import HOST_CAP, HOST_RATE, PAUSED, RATE, SHARED, SLOTS
from .rate import TokenBucket

__all__ = [
    "HOST_CAP",
    "HOST_RATE",
    "PAUSED",
    "RATE",
    "SHARED",
    "SLOTS",
    "Closed",
    "Gate",
    "HostLimits",
    "HostPermit",
    "LocalGate",
    "Slot",
    "TokenBucket",
]
