//! Model files: the catalog of models sotto can fetch, fetching and verifying them, where they
//! live on disk, and reading a GGUF file's header; the wider catalogue of models to plan for
//! (`known`), the latency predictor `sotto plan` runs over it (`predict`), and the synthetic
//! model it calibrates on beside the shipped ones (`synth`).
//!
//! This crate never links llama.cpp; it only reads bytes. The engine calls [`gguf`] before
//! handing a path to llama.cpp, so that a bad file gets a clear error instead of a null pointer.

pub mod catalog;
pub mod fetch;
pub mod gguf;
pub mod known;
pub mod memory;
pub mod predict;
pub mod store;
pub mod synth;

pub use catalog::{CATALOG, DEFAULT_MODEL, ModelSpec};
pub use gguf::{GgufError, GgufHeader};
