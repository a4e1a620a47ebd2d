//! Benchmark bodies shared by `examples/mpc_bench.rs` (in memory) and `tandem bench mpc` (QUIC).
