"""The phase machine at run time: control tables, heartbeats, the per-instance runtime, repair."""
