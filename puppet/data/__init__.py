"""Data: preparing videos into the sharded dataset, reading it back, and synthetic talking-head clips."""
