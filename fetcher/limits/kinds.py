"""The names of the limits, as a URL's ``waited_on`` gives the one that held it back."""

SLOTS = "slots"  # the overall cap (--max), in this process
SHARED = "shared"  # the overall cap, shared with other processes (--shared-slots)
CLUSTER = "cluster"  # the overall cap, shared by a cluster on Redis (--redis, --cluster)
HOST_CAP = "host"  # --max-per-host
ADAPTIVE = "adaptive"  # --adaptive: the host's limit for now, below its cap
HOST_RATE = "host-rate"  # --rate-per-host
RATE = "rate"  # --rate
PAUSED = "paused"  # the host asked fetcher to wait (a 429, or a 503 with Retry-After)

ALL = (SLOTS, SHARED, CLUSTER, HOST_CAP, ADAPTIVE, HOST_RATE, RATE, PAUSED)
