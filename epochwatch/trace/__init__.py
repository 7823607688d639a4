"""The trace format: record types, the whole-line writer, the tolerant reader."""
