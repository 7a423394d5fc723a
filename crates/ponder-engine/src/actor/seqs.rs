//! Sequences: a token list in the shared KV cache and who owns it; allocating, forking and
//! freeing them, and the prefix cache's hold on them.

use std::ops::Range;

use llama_cpp_2::token::LlamaToken;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::backend::Backend;
use super::runs::Run;
use super::{Actor, SessionId};

pub(crate) type SeqId = i32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Job(u64),
    Session(SessionId),
    Probe(u64),
    Cache,
}

pub(super) struct Seq {
    pub tokens: Vec<LlamaToken>,
    /// Tokens already in the KV cache; `tokens[n_past..]` are pending.
    pub n_past: usize,
    pub n_prompt: usize,
    /// Highest token count ever fed: feeding below it again is recomputation.
    pub max_fed: usize,
    pub group: Option<u64>,
    pub rng: ChaCha8Rng,
    pub owner: Owner,
    pub run: Option<Run>,
    /// The root of a sample job: prefilled for its children, then kept as a prefix-cache entry.
    pub prefill_only: bool,
    /// Sample index (jobs) or branch id (sessions).
    pub tag: u64,
    /// Positions of tokens a thinking budget forced in: prompt work when fed.
    pub forced: Range<usize>,
    /// Per token after the prompt, the id of the cell generating it wrote (unique in the
    /// actor; a fork copies them, so equal ids mean shared cells), or [`NOT_GENERATED`]
    /// for forced and appended tokens: what `Usage::dropped` counts on release.
    pub cells: Vec<u64>,
}

/// The cell id of a token that was fed, not generated.
pub(super) const NOT_GENERATED: u64 = 0;

/// Generated tokens of `cells` that none of `others` holds (cells are shared as a prefix).
pub(super) fn unshared_generated<'a>(cells: &[u64], others: impl Iterator<Item = &'a [u64]>) -> usize {
    let shared = others.map(|o| cells.iter().zip(o).take_while(|(a, b)| a == b).count()).max().unwrap_or(0);
    cells[shared..].iter().filter(|&&c| c != NOT_GENERATED).count()
}

impl Seq {
    /// A sequence whose first `reused` tokens are already in its KV cells.
    pub fn new(prompt: Vec<LlamaToken>, reused: usize, owner: Owner, seed: u64, tag: u64) -> Self {
        Seq {
            n_prompt: prompt.len(),
            tokens: prompt,
            n_past: reused,
            max_fed: reused,
            group: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            owner,
            run: None,
            prefill_only: false,
            tag,
            forced: 0..0,
            cells: Vec::new(),
        }
    }

    /// Whether the batch loop feeds it: it generates, probes or prefills for a job.
    pub fn is_running(&self) -> bool {
        self.run.is_some() || self.prefill_only
    }

    /// A child with the same tokens and KV cells. Pending tokens join `group`, so the batch
    /// computes them once for parent and child.
    pub fn fork(&mut self, group: u64, seed: u64, tag: u64) -> Seq {
        if self.n_past < self.tokens.len() {
            self.group = Some(group);
        }
        Seq {
            tokens: self.tokens.clone(),
            n_past: self.n_past,
            n_prompt: self.n_prompt,
            max_fed: self.max_fed,
            group: self.group,
            rng: ChaCha8Rng::seed_from_u64(seed),
            owner: self.owner,
            run: None,
            prefill_only: false,
            tag,
            forced: 0..0,
            cells: self.cells.clone(),
        }
    }
}

impl<B: Backend> Actor<B> {
    pub(super) fn alloc(&mut self) -> Option<SeqId> {
        if self.free.is_empty() {
            self.evict_cache(1);
        }
        self.free.pop()
    }

    pub(super) fn free_seq(&mut self, id: SeqId) {
        if self.seqs.remove(&id).is_some() {
            // Removing a whole sequence cannot fail (llama.cpp: only partial removals can).
            self.backend.clear_kv(id, None);
            self.free.push(id);
        }
    }

    /// The live sequences `owner` holds.
    pub(super) fn owned_by(&self, owner: Owner) -> Vec<SeqId> {
        self.seqs.iter().filter(|(_, s)| s.owner == owner).map(|(&k, _)| k).collect()
    }

    /// Frees least-recently-used prefix-cache entries until `need` ids are free (or none are left).
    pub(super) fn evict_cache(&mut self, need: usize) {
        while self.free.len() < need && !self.cache.is_empty() {
            self.evict_one_cache_entry();
        }
    }

    pub(super) fn evict_one_cache_entry(&mut self) {
        if let Some(seq) = self.cache.evict_lru() {
            self.free_seq(seq);
        }
    }

    /// KV cells the prefix cache holds.
    pub(super) fn cache_cells(&self) -> usize {
        self.cache.seqs().map(|s| self.seqs[&s].tokens.len()).sum()
    }

    /// Copies the longest cached prefix of `prompt` (leaving at least the last token to
    /// compute, whose logits are needed) into `seq`; returns its length.
    pub(super) fn reuse_prefix(&mut self, seq: SeqId, prompt: &[LlamaToken]) -> usize {
        let Some((src, reuse)) = self.cache.lookup(prompt, |s| &self.seqs[&s].tokens) else { return 0 };
        self.backend.copy_kv(src, seq, reuse);
        reuse
    }

    /// Hands `id` to the prefix cache, freeing what the cache lets go.
    pub(super) fn add_to_cache(&mut self, id: SeqId) {
        self.seqs.get_mut(&id).expect("live sequence").owner = Owner::Cache;
        for seq in self.cache.insert(id, |s| &self.seqs[&s].tokens) {
            self.free_seq(seq);
        }
    }

    /// Clones `parent` into a new sequence sharing its KV cells; pending tokens are shared
    /// through a group so they are computed once.
    pub(super) fn fork_seq(&mut self, parent: SeqId, seed: u64, tag: u64) -> Option<SeqId> {
        let child = self.alloc()?;
        let group = match self.seqs[&parent].group {
            Some(g) => g,
            None => self.fresh_id(),
        };
        let seq = self.seqs.get_mut(&parent).expect("parent sequence exists").fork(group, seed, tag);
        if seq.n_past > 0 {
            self.backend.copy_kv(parent, child, seq.n_past);
        }
        self.seqs.insert(child, seq);
        Some(child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[i32]) -> Vec<LlamaToken> {
        v.iter().map(|&t| LlamaToken(t)).collect()
    }

    #[test]
    fn a_fork_with_pending_tokens_joins_a_group() {
        let mut parent = Seq::new(toks(&[1, 2, 3]), 1, Owner::Job(1), 0, 0);
        let child = parent.fork(7, 1, 3);
        assert_eq!((parent.group, child.group), (Some(7), Some(7)));
        assert_eq!((child.tokens.clone(), child.n_past, child.n_prompt, child.max_fed), (parent.tokens.clone(), 1, 3, 1));
        assert_eq!((child.owner, child.tag, child.run.is_none(), child.prefill_only), (Owner::Job(1), 3, true, false));
    }

    #[test]
    fn only_generated_cells_no_other_branch_holds_count() {
        // Forked after 2 cells; the child then appended one token and generated two.
        let parent = [5, 6, 7, 8];
        let child = [5, 6, NOT_GENERATED, 9, 10];
        let check = |cells: &[u64], others: &[&[u64]], expected: usize| {
            assert_eq!(unshared_generated(cells, others.iter().copied()), expected, "{cells:?} against {others:?}");
        };
        check(&child, &[&parent], 2);
        check(&parent, &[&child], 2);
        check(&parent, &[], 4);
        check(&child, &[], 4);
        check(&parent, &[&parent[..3], &child], 1);
        check(&[], &[&parent], 0);
    }

    #[test]
    fn a_fork_of_a_computed_sequence_needs_no_group() {
        let mut parent = Seq::new(toks(&[1, 2, 3]), 3, Owner::Session(4), 0, 0);
        let child = parent.fork(7, 1, 1);
        assert_eq!((parent.group, child.group), (None, None));
        assert_eq!(child.n_past, 3);
    }
}
