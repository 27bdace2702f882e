"""The fleet: docker-compose assets, the load generator, and `dagrpo fleet` (the same topology
as local processes on one machine)."""
