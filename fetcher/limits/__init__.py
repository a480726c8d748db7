"""What may start now: slots, per-host caps, request and byte rates, host pauses.

Nothing here knows HTTP or files.  The run asks these limits for permission
to start a download and to move bytes; a transfer only ever sees a callable.
"""

from .gate import Gate, LocalGate, Slot

__all__ = ["Gate", "LocalGate", "Slot"]
