//! From a request to tokens: render chats with the model's template, find where the shared
//! prefix ends, and refuse a prompt that cannot fit the context window before paying to
//! tokenise it.
//!
//! Must not: tokenise a prompt whose bytes alone prove it too long (llama.cpp's tokenisers are
//! superlinear on long runs without spaces), or parse control-token text in a plain prompt.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::Worker;
use crate::prefix::common_prefix;
use crate::template::Renderer;
use crate::{EngineError, Message, Prompt, Request};

/// A tokenized prompt and where its shared prefix ends.
pub(super) struct Tokens {
    pub tokens: Vec<LlamaToken>,
    pub ids: Vec<i32>,
    /// Tokens of the fixed prefix (system prompt, few-shot examples), if the prompt has one.
    pub boundary: Option<usize>,
    /// Chat rendered completion-style: the next `User:` turn ends the answer.
    pub completion_chat: bool,
}

/// The longest text, in bytes, that one token of `model` stands for (control tokens spelled
/// out): a text of `n` bytes has at least `n / longest` tokens.
pub(super) fn longest_piece(model: &LlamaModel) -> usize {
    model.tokens(true).map(|(_, bytes)| bytes.len()).max().unwrap_or(1).max(1)
}

/// The fewest tokens a text of `bytes` bytes can become when no token stands for more than
/// `longest` bytes. Halved again for tokenisers whose normalisation shortens text.
pub(super) fn fewest_tokens(bytes: usize, longest: usize) -> usize {
    bytes / (2 * longest.max(1))
}

impl Worker<'_> {
    /// Refuse text that is provably too long for the context window, without tokenising it.
    fn check_size(&mut self, bytes: usize) -> Result<(), EngineError> {
        let n_ctx = self.info.n_ctx as usize;
        if bytes < n_ctx {
            return Ok(()); // a token is at least one byte: no bound to prove
        }
        let longest = *self.longest_piece.get_or_insert_with(|| longest_piece(self.model));
        let tokens = fewest_tokens(bytes, longest);
        if tokens >= n_ctx {
            return Err(EngineError::PromptTooLong { tokens, n_ctx: self.info.n_ctx });
        }
        Ok(())
    }

    pub(super) fn tokenize(&mut self, request: &Request) -> Result<Tokens, EngineError> {
        let answer = request.answer_prefix.as_deref().unwrap_or("");
        let (tokens, prefix, completion_chat) = match &request.prompt {
            Prompt::Chat(messages) => {
                self.check_size(messages.iter().map(|m| m.content.len()).sum::<usize>() + answer.len())?;
                let mut text = self.renderer.render(self.model, &self.specials, messages)?;
                text.push_str(answer);
                let prefix = self.chat_prefix(messages, request.fixed_prefix).filter(|p| text.starts_with(p.as_str()));
                let vocab = self.model.vocab();
                let tokens = vocab.tokenize(text.as_bytes(), true, true);
                let prefix = prefix.map(|p| vocab.tokenize(p.as_bytes(), true, true));
                (tokens, prefix, matches!(self.renderer, Renderer::Completion))
            }
            Prompt::Text(text) => {
                self.check_size(text.len() + answer.len())?;
                let vocab = self.model.vocab();
                let full = format!("{text}{answer}");
                let tokens = vocab.tokenize(full.as_bytes(), true, false);
                let prefix = request.fixed_prefix.map(|n| vocab.tokenize(&text.as_bytes()[..n], true, false));
                (tokens, prefix, false)
            }
        };
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt has no tokens".into()));
        }
        if tokens.len() >= self.info.n_ctx as usize {
            return Err(EngineError::PromptTooLong { tokens: tokens.len(), n_ctx: self.info.n_ctx });
        }
        let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        // Tokenizers may merge across the boundary: the shared part is what both agree on.
        let boundary = prefix.map(|p| common_prefix(&ids, &p.iter().map(|t| t.0).collect::<Vec<_>>()));
        Ok(Tokens { tokens, ids, boundary, completion_chat })
    }

    /// The rendered text of a chat's shared leading messages (`fixed`, else its system
    /// messages), up to where the next message's content begins: the part every request with
    /// the same leading messages shares.
    fn chat_prefix(&self, messages: &[Message], fixed: Option<usize>) -> Option<String> {
        let systems = fixed.unwrap_or_else(|| messages.iter().take_while(|m| m.role == "system").count());
        if systems == 0 || systems >= messages.len() {
            return None;
        }
        const MARK: &str = "\u{1}sotto-prefix-end\u{1}";
        let mut probe = messages[..systems].to_vec();
        probe.push(Message::new(&messages[systems].role, MARK));
        let text = self.renderer.render(self.model, &self.specials, &probe).ok()?;
        text.find(MARK).map(|at| text[..at].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_bound_never_exceeds_what_any_split_could_give() {
        // With pieces of at most `longest` bytes, `bytes` need at least ceil(bytes / longest)
        // tokens; the bound is at most half of that.
        for longest in [1, 2, 7, 16, 48] {
            for bytes in [0usize, 1, 100, 4096, 1 << 20] {
                let floor = bytes.div_ceil(longest);
                assert!(fewest_tokens(bytes, longest) <= floor, "{bytes} bytes, pieces of {longest}");
            }
        }
        assert_eq!(fewest_tokens(1 << 20, 16), 32_768);
    }
}
