"""release-runner: apply PostgreSQL migrations at deploy time, verify the schema, exit honestly."""

__version__ = "0.1.0"
