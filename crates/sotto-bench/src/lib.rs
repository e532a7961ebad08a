//! Benchmarks that back sotto's promises with figures. Each one measures as
//! ../shared/MEASURING.md defines, prints a table, and returns the raw data for committing.
//!
//! Benchmarks are not tests: nothing here asserts a timing. They report, and say whether each
//! promise held.

pub mod analyze;
pub mod client;
pub mod governor;
pub mod matrix;
pub mod process;
pub mod serve;
pub mod soak;
pub mod workload;
