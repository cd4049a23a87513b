"""Many replicas of the bots on one Redis, behind a round-robin forwarder."""
