//! The prefix cache's bookkeeping: which KV state to start a prompt from.
//!
//! Two sources can save work: the live KV cache (what the previous request left in the
//! context) and a small LRU of saved snapshots of fixed prefixes (system prompt, few-shot
//! examples). For each prompt the planner picks whichever covers more of it. This module is
//! plain logic over token ids and is generic over the snapshot type, so it is tested without
//! a model; the engine thread does the llama.cpp calls.
//!
//! Must not: hand out a snapshot that is not an exact prefix of the prompt, or keep more
//! snapshot bytes than its capacity.

/// Fewer shared tokens than this are not worth a snapshot.
pub(crate) const MIN_SNAPSHOT_TOKENS: usize = 16;

struct Entry<S> {
    tokens: Vec<i32>,
    state: S,
    bytes: usize,
    last_used: u64,
}

/// Saved prefix states, least recently used evicted first, bounded in bytes.
pub(crate) struct Snapshots<S> {
    entries: Vec<Entry<S>>,
    capacity: usize,
    used: usize,
    clock: u64,
}

/// Where a prompt's evaluation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Keep the first `n` tokens of the live KV cache and drop the rest.
    Live(usize),
    /// Restore snapshot `index`, which holds the first `n` tokens.
    Snapshot { index: usize, n: usize },
    /// Evaluate everything.
    Scratch,
}

/// Length of the longest common prefix.
pub(crate) fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<S> Snapshots<S> {
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        Snapshots { entries: Vec::new(), capacity: capacity_bytes, used: 0, clock: 0 }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.used
    }

    pub(crate) fn contains(&self, tokens: &[i32]) -> bool {
        self.entries.iter().any(|e| e.tokens == tokens)
    }

    /// Decide where to start `prompt`, given the tokens in the live KV cache. At least one
    /// prompt token is always left to evaluate: its logits are needed.
    pub(crate) fn plan(&mut self, live: &[i32], prompt: &[i32]) -> Start {
        let usable = prompt.len().saturating_sub(1);
        let live_n = common_prefix(live, prompt).min(usable);
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.tokens.len() <= usable && prompt.starts_with(&e.tokens))
            .max_by_key(|(_, e)| e.tokens.len())
            .map(|(i, e)| (i, e.tokens.len()));
        match best {
            Some((index, n)) if n > live_n => {
                self.clock += 1;
                self.entries[index].last_used = self.clock;
                Start::Snapshot { index, n }
            }
            _ if live_n > 0 => Start::Live(live_n),
            _ => Start::Scratch,
        }
    }

    pub(crate) fn get(&self, index: usize) -> &S {
        &self.entries[index].state
    }

    /// Keep `state` for `tokens`, evicting the least recently used until it fits. A state
    /// larger than the whole capacity is not kept.
    pub(crate) fn insert(&mut self, tokens: Vec<i32>, state: S, bytes: usize) -> bool {
        if bytes > self.capacity || self.contains(&tokens) {
            return false;
        }
        while self.used + bytes > self.capacity {
            let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used).map(|(i, _)| i);
            let Some(i) = oldest else { break };
            self.used -= self.entries.swap_remove(i).bytes;
        }
        self.clock += 1;
        self.used += bytes;
        self.entries.push(Entry { tokens, state, bytes, last_used: self.clock });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_whichever_source_covers_more_and_leaves_one_token() {
        let mut s: Snapshots<&str> = Snapshots::new(100);
        let prompt = [1, 2, 3, 4, 5, 6];
        assert_eq!(s.plan(&[], &prompt), Start::Scratch);
        assert_eq!(s.plan(&[1, 2, 9], &prompt), Start::Live(2));
        // The live cache holds the whole prompt: the last token is evaluated again anyway.
        assert_eq!(s.plan(&prompt, &prompt), Start::Live(5));

        s.insert(vec![1, 2, 3], "abc", 10);
        s.insert(vec![1, 2, 3, 4], "abcd", 10);
        s.insert(vec![7, 8], "other", 10);
        assert_eq!(s.plan(&[1, 2, 9], &prompt), Start::Snapshot { index: 1, n: 4 });
        assert_eq!(*s.get(1), "abcd");
        assert_eq!(s.plan(&[1, 2, 3, 4, 5], &prompt), Start::Live(5));
        // A snapshot as long as the whole prompt would leave nothing to evaluate.
        assert_eq!(s.plan(&[], &[1, 2, 3, 4]), Start::Snapshot { index: 0, n: 3 });
    }

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let mut s: Snapshots<u8> = Snapshots::new(25);
        assert!(s.insert(vec![1; 20], 1, 10));
        assert!(s.insert(vec![2; 20], 2, 10));
        // Using the first makes the second the oldest.
        let mut prompt = vec![1; 20];
        prompt.push(0);
        assert!(matches!(s.plan(&[], &prompt), Start::Snapshot { .. }));
        assert!(s.insert(vec![3; 20], 3, 10));
        assert_eq!(s.len(), 2);
        assert!(s.contains(&[1; 20]) && s.contains(&[3; 20]) && !s.contains(&[2; 20]));
        assert_eq!(s.bytes(), 20);
        assert!(!s.insert(vec![4; 20], 4, 26), "larger than the capacity");
        assert!(!s.insert(vec![3; 20], 3, 1), "already present");
        assert!(!Snapshots::<u8>::new(0).enabled());
    }
}
