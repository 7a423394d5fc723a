//! The prefix cache: finished prompts kept as sequences, least recently used evicted first.
//!
//! It holds sequence ids only; their tokens live with the sequences (read through a
//! closure), and evicted ids go back to the caller, which frees their KV cells.

use llama_cpp_2::token::LlamaToken;

use super::seqs::SeqId;

struct Entry {
    seq: SeqId,
    last_used: u64,
}

pub(super) struct PrefixCache {
    entries: Vec<Entry>,
    capacity: usize,
    clock: u64,
}

impl PrefixCache {
    pub fn new(capacity: usize) -> Self {
        Self { entries: Vec::new(), capacity, clock: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn seqs(&self) -> impl Iterator<Item = SeqId> + '_ {
        self.entries.iter().map(|e| e.seq)
    }

    /// The entry sharing the longest prefix with `prompt` and how many tokens of it to
    /// reuse: at most all but the last, whose logits are needed. A hit counts as a use.
    pub fn lookup<'t>(&mut self, prompt: &[LlamaToken], tokens: impl Fn(SeqId) -> &'t [LlamaToken]) -> Option<(SeqId, usize)> {
        self.clock += 1;
        let mut best: Option<(usize, usize)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let lcp = tokens(e.seq).iter().zip(prompt).take_while(|(a, b)| a == b).count();
            if lcp > best.map_or(0, |b| b.1) {
                best = Some((i, lcp));
            }
        }
        let (i, lcp) = best?;
        let reuse = lcp.min(prompt.len().saturating_sub(1));
        if reuse == 0 {
            return None;
        }
        self.entries[i].last_used = self.clock;
        Some((self.entries[i].seq, reuse))
    }

    /// Files `seq` as the newest entry; returns the sequences to free: an older entry with
    /// the same tokens, then least recently used ones past capacity (with capacity 0, `seq`
    /// itself).
    pub fn insert<'t>(&mut self, seq: SeqId, tokens: impl Fn(SeqId) -> &'t [LlamaToken]) -> Vec<SeqId> {
        self.clock += 1;
        let mut freed = Vec::new();
        let own = tokens(seq);
        if let Some(i) = self.entries.iter().position(|e| tokens(e.seq) == own) {
            freed.push(self.entries.remove(i).seq);
        }
        self.entries.push(Entry { seq, last_used: self.clock });
        while self.entries.len() > self.capacity {
            freed.extend(self.evict_lru());
        }
        freed
    }

    /// Removes the least recently used entry (the oldest on a tie); the caller frees it.
    pub fn evict_lru(&mut self) -> Option<SeqId> {
        let (i, _) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used)?;
        Some(self.entries.remove(i).seq)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn toks(v: &[i32]) -> Vec<LlamaToken> {
        v.iter().map(|&t| LlamaToken(t)).collect()
    }

    /// A cache over sequences 0.. holding `texts`, each inserted in order.
    fn cache(capacity: usize, texts: &[&[i32]]) -> (PrefixCache, HashMap<SeqId, Vec<LlamaToken>>, Vec<SeqId>) {
        let seqs: HashMap<SeqId, Vec<LlamaToken>> = texts.iter().enumerate().map(|(i, t)| (i as SeqId, toks(t))).collect();
        let mut c = PrefixCache::new(capacity);
        let mut freed = Vec::new();
        for i in 0..texts.len() {
            freed.extend(c.insert(i as SeqId, |s| &seqs[&s]));
        }
        (c, seqs, freed)
    }

    fn check_lookup(c: &mut PrefixCache, seqs: &HashMap<SeqId, Vec<LlamaToken>>, prompt: &[i32], expected: Option<(SeqId, usize)>) {
        assert_eq!(c.lookup(&toks(prompt), |s| &seqs[&s]), expected, "prompt {prompt:?}");
    }

    #[test]
    fn lookup_takes_the_longest_prefix_and_leaves_the_last_token() {
        let (mut c, seqs, freed) = cache(4, &[&[1, 2], &[1, 2, 3, 4], &[5]]);
        assert!(freed.is_empty());
        check_lookup(&mut c, &seqs, &[1, 2, 3, 9], Some((1, 3)));
        check_lookup(&mut c, &seqs, &[1, 2, 3, 4], Some((1, 3)));
        check_lookup(&mut c, &seqs, &[1, 2, 3, 4, 5], Some((1, 4)));
        // A tie goes to the older entry.
        check_lookup(&mut c, &seqs, &[1, 2, 7], Some((0, 2)));
        check_lookup(&mut c, &seqs, &[9, 1], None);
        // A one-token prompt has nothing to reuse: its only token must be computed.
        check_lookup(&mut c, &seqs, &[5], None);
        check_lookup(&mut c, &seqs, &[], None);
    }

    #[test]
    fn capacity_zero_frees_what_it_is_given() {
        let (c, _, freed) = cache(0, &[&[1, 2], &[3, 4]]);
        assert_eq!(freed, vec![0, 1]);
        assert!(c.is_empty());
    }

    #[test]
    fn capacity_one_keeps_the_newest() {
        let (mut c, seqs, freed) = cache(1, &[&[1, 2], &[3, 4], &[5, 6]]);
        assert_eq!(freed, vec![0, 1]);
        assert_eq!(c.seqs().collect::<Vec<_>>(), vec![2]);
        check_lookup(&mut c, &seqs, &[5, 6, 7], Some((2, 2)));
        check_lookup(&mut c, &seqs, &[1, 2, 7], None);
    }

    #[test]
    fn eviction_frees_the_least_recently_used() {
        let (mut c, mut seqs, _) = cache(2, &[&[1, 2], &[3, 4]]);
        // Reusing the older entry makes the other one the least recently used.
        check_lookup(&mut c, &seqs, &[1, 2, 9], Some((0, 2)));
        seqs.insert(7, toks(&[5, 6]));
        assert_eq!(c.insert(7, |s| &seqs[&s]), vec![1]);
        assert_eq!(c.seqs().collect::<Vec<_>>(), vec![0, 7]);
        // A miss refreshes nothing.
        check_lookup(&mut c, &seqs, &[8, 8], None);
        assert_eq!(c.evict_lru(), Some(0));
        assert_eq!(c.evict_lru(), Some(7));
        assert_eq!(c.evict_lru(), None);
    }

    #[test]
    fn the_same_tokens_replace_the_older_entry() {
        let (mut c, mut seqs, _) = cache(2, &[&[1, 2], &[3, 4]]);
        seqs.insert(5, toks(&[1, 2]));
        assert_eq!(c.insert(5, |s| &seqs[&s]), vec![0]);
        assert_eq!(c.len(), 2);
        check_lookup(&mut c, &seqs, &[1, 2, 3], Some((5, 2)));
    }
}
