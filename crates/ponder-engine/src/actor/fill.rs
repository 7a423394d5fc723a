//! Batch filling: the pending tokens of every running sequence, from every request, in one
//! batch of at most `n_batch` tokens, with the prompt work each slot costs its owner.
//!
//! A batch that feeds several slots holds at most `shared_rows` tokens. At 64 or more
//! query rows in one micro-batch, llama.cpp's CPU flash attention switches to a tiled path
//! that is dense over every cell of the unified cache, because the interleaved cells of
//! the sequences leave no tile fully masked: decoding 64 sequences in one call was slower
//! than decoding 63 (issue 12). Sequences left out of a batch go first in the next one
//! (least generated first), so every sequence advances.

use std::collections::{HashMap, HashSet};

use llama_cpp_2::token::LlamaToken;

use super::seqs::{Owner, Seq, SeqId};

/// A slot of the batch: tokens fed once for `members`, from position `pos`.
pub(crate) struct Slot {
    pub members: Vec<SeqId>,
    pub pos: usize,
    pub tokens: Vec<LlamaToken>,
    /// The batch index of the last token's logits, when the slot feeds all that is pending.
    pub logits_at: Option<i32>,
    /// Who pays for the slot (the first member's owner; a group has one owner).
    pub owner: Owner,
    /// Prompt and re-fed tokens among `tokens`: computed prompt.
    pub prompt_computed: u64,
    /// Tokens a group shares, counted once per member that does not pay (sessions; jobs
    /// count their sharing up front).
    pub prompt_reused: u64,
}

/// Fills one batch, decode-phase sequences (fewest pending tokens) first so a long prefill
/// never stalls generation; a prefill that does not fit is fed in part, without logits.
/// A slot alone may fill `n_batch`; several share at most `shared_rows` (0: no cap).
pub(crate) fn fill(seqs: &HashMap<SeqId, Seq>, n_batch: usize, shared_rows: usize) -> Vec<Slot> {
    let shared_cap = if shared_rows == 0 { n_batch } else { shared_rows.min(n_batch) };
    // (pending, generated, id): among equals, the sequence furthest behind goes first.
    let mut ready: Vec<(usize, usize, SeqId)> = seqs
        .iter()
        .filter(|(_, s)| s.is_running() && s.n_past < s.tokens.len())
        .map(|(&id, s)| (s.tokens.len() - s.n_past, s.tokens.len().saturating_sub(s.n_prompt), id))
        .collect();
    ready.sort_unstable();
    let mut placed = HashSet::new();
    let mut slots = Vec::new();
    let mut n_tokens = 0;
    for &(_, _, id) in &ready {
        if placed.contains(&id) {
            continue;
        }
        let s = &seqs[&id];
        let pending = &s.tokens[s.n_past..];
        let members: Vec<SeqId> = match s.group {
            Some(g) => ready
                .iter()
                .map(|&(_, _, o)| o)
                .filter(|o| {
                    let t = &seqs[o];
                    t.group == Some(g) && t.n_past == s.n_past && t.tokens[t.n_past..] == *pending
                })
                .collect(),
            None => vec![id],
        };
        let cap = if slots.is_empty() { n_batch } else { shared_cap };
        let room = cap.saturating_sub(n_tokens);
        if room == 0 {
            break;
        }
        let take = pending.len().min(room);
        n_tokens += take;
        let logits_at = (take == pending.len()).then_some(n_tokens as i32 - 1);
        // Prompt tokens and re-fed tokens are computed prompt; tokens shared by a group are
        // reused by every member but the one that pays.
        let (n_past, n_prompt, max_fed) = (s.n_past, s.n_prompt, s.max_fed);
        let prompt_computed = (n_past..n_past + take)
            .filter(|&pos| pos < n_prompt || pos < max_fed || s.forced.contains(&pos))
            .count() as u64;
        let sharers = members
            .iter()
            .filter(|m| !seqs[m].prefill_only)
            .count()
            .max(1) as u64
            - 1;
        let prompt_reused = if matches!(s.owner, Owner::Session(_)) {
            sharers * take as u64
        } else {
            0
        };
        placed.extend(members.iter().copied());
        slots.push(Slot {
            members,
            pos: n_past,
            tokens: pending[..take].to_vec(),
            logits_at,
            owner: s.owner,
            prompt_computed,
            prompt_reused,
        });
    }
    slots
}

/// After a decode: every member of `slot` has its tokens in the KV cache.
pub(crate) fn computed(seqs: &mut HashMap<SeqId, Seq>, slot: &Slot) {
    for &m in &slot.members {
        let s = seqs.get_mut(&m).expect("members stay live until their logits are read");
        s.n_past += slot.tokens.len();
        s.max_fed = s.max_fed.max(s.n_past);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ponder_core::SamplingParams;

    use super::*;
    use crate::actor::runs::Run;

    fn toks(n: usize) -> Vec<LlamaToken> {
        (0..n as i32).map(LlamaToken).collect()
    }

    /// A generating sequence of `n_tokens`, the first `n_past` computed.
    fn running(n_tokens: usize, n_past: usize, owner: Owner) -> Seq {
        let mut s = Seq::new(toks(n_tokens), n_past, owner, 0, 0);
        s.run = Some(Run::sample(Arc::new(SamplingParams::greedy())));
        s
    }

    /// A sequence in its decode phase: `n_prompt` prompt tokens, one generated token pending.
    fn decoding(n_prompt: usize, n_tokens: usize, owner: Owner) -> Seq {
        let mut s = running(n_tokens, n_tokens - 1, owner);
        s.n_prompt = n_prompt;
        s
    }

    /// (members, pos, fed, logits_at, prompt_computed, prompt_reused) of each slot.
    type Shape = (Vec<SeqId>, usize, usize, Option<i32>, u64, u64);

    fn shape(slots: &[Slot]) -> Vec<Shape> {
        slots
            .iter()
            .map(|s| {
                let mut m = s.members.clone();
                m.sort_unstable();
                (m, s.pos, s.tokens.len(), s.logits_at, s.prompt_computed, s.prompt_reused)
            })
            .collect()
    }

    fn check(seqs: &HashMap<SeqId, Seq>, n_batch: usize, expected: Vec<Shape>) {
        let slots = fill(seqs, n_batch, 0);
        assert!(slots.iter().map(|s| s.tokens.len()).sum::<usize>() <= n_batch);
        assert_eq!(shape(&slots), expected);
    }

    #[test]
    fn decode_phase_first_and_a_long_prefill_is_cut_at_n_batch() {
        let seqs = HashMap::from([(0, running(10, 0, Owner::Job(1))), (1, decoding(3, 6, Owner::Job(2))), (2, decoding(3, 9, Owner::Job(3)))]);
        check(&seqs, 6, vec![(vec![1], 5, 1, Some(0), 0, 0), (vec![2], 8, 1, Some(1), 0, 0), (vec![0], 0, 4, None, 4, 0)]);
        check(&seqs, 2, vec![(vec![1], 5, 1, Some(0), 0, 0), (vec![2], 8, 1, Some(1), 0, 0)]);
        check(&seqs, 12, vec![(vec![1], 5, 1, Some(0), 0, 0), (vec![2], 8, 1, Some(1), 0, 0), (vec![0], 0, 10, Some(11), 10, 0)]);
        check(&seqs, 0, vec![]);
    }

    #[test]
    fn idle_and_computed_sequences_are_left_out() {
        let mut idle = running(5, 0, Owner::Session(1));
        idle.run = None;
        let mut root = Seq::new(toks(3), 0, Owner::Job(2), 0, 0);
        root.prefill_only = true;
        let seqs = HashMap::from([(0, idle), (1, running(4, 4, Owner::Job(1))), (2, root)]);
        check(&seqs, 8, vec![(vec![2], 0, 3, Some(2), 3, 0)]);
    }

    #[test]
    fn generated_tokens_are_not_prompt_unless_fed_again() {
        // Two prompt tokens, two generated ones computed before (a rollback), two new ones.
        let mut s = running(6, 0, Owner::Session(1));
        s.n_prompt = 2;
        s.max_fed = 4;
        check(&HashMap::from([(0, s)]), 8, vec![(vec![0], 0, 6, Some(5), 4, 0)]);
    }

    /// A job's root and its `n` children, forked before anything is computed.
    fn job(n: usize, owner: Owner) -> HashMap<SeqId, Seq> {
        let mut root = Seq::new(toks(5), 1, owner, 0, 0);
        root.prefill_only = true;
        let mut seqs = HashMap::new();
        for i in 1..=n as SeqId {
            let mut child = root.fork(9, i as u64, i as u64);
            child.run = Some(Run::sample(Arc::new(SamplingParams::greedy())));
            seqs.insert(i, child);
        }
        seqs.insert(0, root);
        seqs
    }

    #[test]
    fn a_group_is_fed_once_for_all_its_members() {
        // Jobs count their sharing when they start, so the slot adds none.
        check(&job(3, Owner::Job(1)), 8, vec![(vec![0, 1, 2, 3], 1, 4, Some(3), 4, 0)]);
        // Sessions count it here: every member but the one that pays reuses the tokens.
        let mut seqs = job(3, Owner::Session(1));
        seqs.remove(&0);
        check(&seqs, 8, vec![(vec![1, 2, 3], 1, 4, Some(3), 4, 8)]);
    }

    #[test]
    fn a_member_whose_tokens_differ_leaves_the_group() {
        let mut seqs = job(2, Owner::Session(1));
        seqs.remove(&0);
        seqs.get_mut(&2).unwrap().tokens.push(LlamaToken(7));
        check(&seqs, 16, vec![(vec![1], 1, 4, Some(3), 4, 0), (vec![2], 1, 5, Some(8), 4, 0)]);
    }

    #[test]
    fn a_prefill_in_chunks_costs_its_prompt_once() {
        let mut seqs = HashMap::from([(0, running(10, 0, Owner::Job(1)))]);
        let mut fed = Vec::new();
        let mut computed_prompt = 0;
        loop {
            let slots = fill(&seqs, 4, 0);
            if slots.is_empty() {
                break;
            }
            for slot in &slots {
                fed.push((slot.tokens.len(), slot.logits_at));
                computed_prompt += slot.prompt_computed;
                computed(&mut seqs, slot);
            }
        }
        assert_eq!(fed, vec![(4, None), (4, None), (2, Some(1))]);
        assert_eq!(computed_prompt, 10);
        assert_eq!((seqs[&0].n_past, seqs[&0].max_fed), (10, 10));
    }

    #[test]
    fn several_slots_share_at_most_shared_rows_and_the_ones_left_out_go_next() {
        let mut seqs: HashMap<SeqId, Seq> = (0..10).map(|i| (i, decoding(3, 6, Owner::Job(1)))).collect();
        let first = fill(&seqs, 512, 4);
        assert_eq!(first.len(), 4);
        let mut fed: Vec<SeqId> = first.iter().flat_map(|s| s.members.clone()).collect();
        // Each fed sequence samples its next token: it is now one generated token ahead.
        for slot in &first {
            computed(&mut seqs, slot);
            seqs.get_mut(&slot.members[0]).unwrap().tokens.push(LlamaToken(1));
        }
        let second = fill(&seqs, 512, 4);
        let next: Vec<SeqId> = second.iter().flat_map(|s| s.members.clone()).collect();
        assert!(next.iter().all(|m| !fed.contains(m)), "left out first: {fed:?} then {next:?}");
        fed.extend(next);
        // Without a cap, every sequence is fed at once.
        assert_eq!(fill(&seqs, 512, 0).len(), 10);
        fed.sort_unstable();
        fed.dedup();
        assert_eq!(fed.len(), 8);
    }

    #[test]
    fn a_prefill_alone_fills_n_batch_and_behind_decodes_only_the_shared_rows() {
        let alone = HashMap::from([(0, running(100, 0, Owner::Job(1)))]);
        assert_eq!(shape(&fill(&alone, 64, 8)), vec![(vec![0], 0, 64, None, 64, 0)]);
        let mixed = HashMap::from([(0, running(100, 0, Owner::Job(1))), (1, decoding(3, 6, Owner::Job(2)))]);
        assert_eq!(shape(&fill(&mixed, 64, 8)), vec![(vec![1], 5, 1, Some(0), 0, 0), (vec![0], 0, 7, None, 7, 0)]);
    }
}
