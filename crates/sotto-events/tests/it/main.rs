//! The integration tests of sotto-events: `.evtx` files built here byte by byte and read back,
//! and property tests that feed every parser arbitrary input.
//!
//! Must not: hold or read any third-party event log recording (the files are made in code).

mod evtx_file;
mod props;
