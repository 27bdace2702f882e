"""Budget stores: where the gateway's counters live. SQLite (embedded default) or Redis (fleet)."""
