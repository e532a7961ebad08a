//! The model's tokenizer on its own, for any thread: the GGUF loaded vocabulary-only (no
//! weights), so that callers can bound a prompt's cost in tokens before they submit it.
//!
//! Must not: hold the weights (a vocabulary-only load reads the metadata and the token table),
//! or add special tokens to a count.

use std::path::Path;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use crate::EngineError;
use crate::worker::backend;

/// Counts tokens the way the loaded model will.
pub struct Tokenizer {
    model: LlamaModel,
}

impl Tokenizer {
    /// Load the vocabulary of the GGUF at `path`.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend()?, path, &params)
            .map_err(|e| EngineError::Load { path: path.to_path_buf(), reason: format!("vocabulary: {e}") })?;
        Ok(Tokenizer { model })
    }

    /// Tokens in `text` as plain prompt text (no beginning-of-sequence token, special-token
    /// markup not parsed).
    pub fn count(&self, text: &str) -> usize {
        self.model.vocab().tokenize(text.as_bytes(), false, false).len()
    }
}
