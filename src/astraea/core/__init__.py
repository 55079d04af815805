"""Pure domain model: no I/O, no clocks, no sockets. Everything else builds on it."""
