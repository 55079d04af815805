"""The `astraea` command."""
