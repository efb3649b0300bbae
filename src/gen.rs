//! Synthetic snapshots for benchmarks (`rolecall gen`).
