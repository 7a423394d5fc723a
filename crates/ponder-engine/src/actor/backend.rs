//! What the actor asks of llama.cpp — decode a batch, read logits, the vocabulary, KV-cell
//! copies and removals — as a trait, so the bookkeeping around it runs without a model.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;

use super::fill::Slot;
use super::seqs::SeqId;

pub(crate) trait Backend {
    /// Computes every slot's tokens in one pass; afterwards each slot with `logits_at`
    /// has its logits at that batch index.
    fn decode(&mut self, slots: &[Slot]) -> Result<(), DecodeError>;
    fn logits(&self, idx: i32) -> &[f32];
    fn is_eog(&self, token: LlamaToken) -> bool;
    fn piece(&self, token: LlamaToken) -> Vec<u8>;
    /// Removes `seq`'s cells from position `from` on (all of them for `None`); whether
    /// llama.cpp could.
    fn clear_kv(&mut self, seq: SeqId, from: Option<usize>) -> bool;
    /// Shares `src`'s first `n` cells with `dst`.
    fn copy_kv(&mut self, src: SeqId, dst: SeqId, n: usize);
}

/// The real backend: one llama.cpp context and its batch, reused every step.
pub(crate) struct Llama<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
}

impl<'m> Llama<'m> {
    pub fn new(model: &'m LlamaModel, ctx: LlamaContext<'m>, n_batch: usize, n_seq_max: usize) -> Self {
        Self { model, ctx, batch: LlamaBatch::new(n_batch, n_seq_max as i32) }
    }
}

impl Backend for Llama<'_> {
    fn decode(&mut self, slots: &[Slot]) -> Result<(), DecodeError> {
        self.batch.clear();
        for slot in slots {
            let n = slot.tokens.len();
            for (j, &tok) in slot.tokens.iter().enumerate() {
                let logits = slot.logits_at.is_some() && j + 1 == n;
                // Filling kept within n_batch, so adding cannot fail.
                let _ = self.batch.add(tok, (slot.pos + j) as i32, &slot.members, logits);
            }
        }
        self.ctx.decode(&mut self.batch)
    }

    fn logits(&self, idx: i32) -> &[f32] {
        self.ctx.get_logits_ith(idx)
    }

    fn is_eog(&self, token: LlamaToken) -> bool {
        self.model.vocab().is_eog(token)
    }

    fn piece(&self, token: LlamaToken) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, false, None)
    }

    fn clear_kv(&mut self, seq: SeqId, from: Option<usize>) -> bool {
        self.ctx.clear_kv_cache_seq(Some(seq as u32), from.map(|p| p as u32), None).unwrap_or(false)
    }

    fn copy_kv(&mut self, src: SeqId, dst: SeqId, n: usize) {
        let _ = self.ctx.copy_kv_cache_seq(src, dst, Some(0), Some(n as u32));
    }
}
