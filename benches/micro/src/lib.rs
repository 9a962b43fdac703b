//! Shared workload generators of the protoplex micro-benchmarks.
//!
//! Everything is deterministic (a small seeded PRNG), so the same filters
//! and documents can be dumped to JSON and replayed against another engine
//! (e.g. Koncorde) for a side-by-side comparison.

pub mod filters;
