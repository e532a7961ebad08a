//! The prefix cache on the engine thread: put the KV cache in the best state to start a
//! prompt from (the live sequence, a snapshot in memory, or one persisted on disk), and keep
//! a fixed prefix's state the moment it is evaluated.
//!
//! Must not: restore a state whose tokens differ from the prompt's, or keep disk states beyond
//! their byte budget.

use std::sync::atomic::Ordering;
use std::time::Instant;

use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::token::LlamaToken;

use super::Worker;
use super::prompt::Tokens;
use crate::ModelInfo;
use crate::prefix::{MIN_SNAPSHOT_TOKENS, Start, common_prefix};

impl Worker<'_> {
    /// Put the KV cache in the best state to start `prompt` from; returns how many of its
    /// tokens are already evaluated.
    pub(super) fn restore(&mut self, prompt: &Tokens) -> usize {
        if !self.snapshots.enabled() {
            self.ctx.clear_kv_cache();
            self.live.clear();
            return 0;
        }
        if let Some(b) = prompt.boundary {
            self.load_persisted(&prompt.ids, b);
        }
        match self.snapshots.plan(&self.live, &prompt.ids) {
            Start::Scratch => {
                self.ctx.clear_kv_cache();
                self.live.clear();
                0
            }
            Start::Live(n) => {
                if self.ctx.kv_cache_seq_rm(0, Some(n as u32), None).is_err() {
                    // Some caches (recurrent models) cannot drop a tail: start over.
                    self.ctx.clear_kv_cache();
                    self.live.clear();
                    return 0;
                }
                self.live.truncate(n);
                n
            }
            Start::Snapshot { index, n } => {
                self.ctx.clear_kv_cache();
                self.live.clear();
                match self.ctx.state_seq_set(self.snapshots.get(index), 0) {
                    Ok(()) => {
                        self.live.extend_from_slice(&prompt.ids[..n]);
                        n
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "restoring a prefix snapshot failed; evaluating from scratch");
                        self.ctx.clear_kv_cache();
                        0
                    }
                }
            }
        }
    }

    /// If the prefix `ids[..boundary]` is neither in memory nor live but persisted on disk,
    /// load it into the live cache and keep it in memory.
    fn load_persisted(&mut self, ids: &[i32], boundary: usize) {
        let Some(dir) = &self.persist else { return };
        let prefix = &ids[..boundary];
        if boundary < MIN_SNAPSHOT_TOKENS
            || boundary >= ids.len()
            || self.snapshots.contains(prefix)
            || common_prefix(&self.live, ids) >= boundary
        {
            return;
        }
        let path = dir.join(prefix_file_name(prefix));
        if !path.exists() {
            return;
        }
        let started = Instant::now();
        self.ctx.clear_kv_cache();
        self.live.clear();
        match self.ctx.state_seq_load_file(&path, 0, boundary + 1) {
            Ok((tokens, _)) if tokens.iter().map(|t| t.0).eq(prefix.iter().copied()) => {
                crate::persist::touch(&path);
                self.live.extend_from_slice(prefix);
                self.keep_snapshot(prefix, false);
                tracing::debug!(
                    tokens = boundary,
                    ms = started.elapsed().as_millis() as u64,
                    "prefix loaded from disk"
                );
            }
            Ok(_) => {
                self.ctx.clear_kv_cache();
                tracing::warn!(path = %path.display(), "persisted prefix holds other tokens; ignored");
            }
            Err(e) => {
                self.ctx.clear_kv_cache();
                tracing::warn!(path = %path.display(), error = %e, "cannot load a persisted prefix; ignored");
            }
        }
    }

    /// Snapshot sequence 0, which holds exactly `prefix`, into the LRU (and to disk).
    pub(super) fn keep_snapshot(&mut self, prefix: &[i32], persist: bool) {
        let started = Instant::now();
        let state = match self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot snapshot the prefix");
                return;
            }
        };
        let bytes = state.byte_len();
        if !self.snapshots.insert(prefix.to_vec(), state, bytes) {
            return;
        }
        self.shared.prefix_bytes.store(self.snapshots.bytes() as u64, Ordering::Relaxed);
        self.shared.prefix_entries.store(self.snapshots.len() as u64, Ordering::Relaxed);
        tracing::debug!(
            tokens = prefix.len(),
            bytes,
            us = started.elapsed().as_micros() as u64,
            "prefix snapshot kept"
        );
        if let (true, Some(dir)) = (persist, &self.persist) {
            let path = dir.join(prefix_file_name(prefix));
            let tmp = path.with_extension("partial");
            let tokens: Vec<LlamaToken> = prefix.iter().map(|&t| LlamaToken(t)).collect();
            let saved = self.ctx.state_seq_save_file(&tmp, 0, &tokens).map_err(|e| e.to_string()).and_then(|_| {
                crate::persist::private_file(&tmp);
                std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
            });
            match saved {
                Ok(()) => {
                    let removed = crate::persist::evict(dir, self.prefix_disk);
                    if removed > 0 {
                        tracing::debug!(bytes = removed, "least recently used prefix states removed from disk");
                    }
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(path = %path.display(), error = %e, "cannot persist the prefix");
                }
            }
        }
    }
}

/// A folder name that changes whenever a saved state would no longer fit: another model file
/// (by content), context size or KV type.
pub(super) fn context_key(info: &ModelInfo, sha256: &str) -> String {
    format!("{}-ctx{}-{:?}", &sha256[..sha256.len().min(16)], info.n_ctx, info.kv_type).to_lowercase()
}

/// The file a prefix's state is persisted in: a 64-bit FNV-1a hash of its token ids (the file
/// also holds the ids, which are compared on load).
fn prefix_file_name(ids: &[i32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ids.iter().flat_map(|t| t.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("prefix-{h:016x}-{}.state", ids.len())
}
