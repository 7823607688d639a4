"""The trace format: record types, the whole-line writer, the tolerant reader; and the
wire protocol that carries records to the daemon, with its client side."""
