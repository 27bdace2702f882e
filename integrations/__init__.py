"""Adapters that run DA-GRPO inside other RL engines (one subpackage per engine, its own extra)."""
