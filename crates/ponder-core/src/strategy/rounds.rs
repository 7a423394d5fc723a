//! Drawing in rounds until settled: the loop adaptive self-consistency and verified
//! resampling share. Samples start `round_size` at a time; each finished sample is shown
//! to a [`Settle`] rule, and once the rule is settled the samples still running are
//! cancelled (their tokens so far still count in usage) and no new round starts.
//! DeepConf's online mode goes on from its warm-up with the same loop
//! ([`draw_more_in_rounds`]).

use async_trait::async_trait;

use super::{candidate, Candidate, Ctx, StrategyError};
use crate::generator::{Sample, SampleRequest, SamplingParams};
use crate::{Message, Usage};

/// What has been drawn so far.
#[derive(Debug, Default)]
pub(crate) struct Drawn {
    /// In the order they finished.
    pub candidates: Vec<Candidate>,
    pub n_failed: usize,
    /// Samples started (drawn, failed or cancelled).
    pub started: usize,
    pub usage: Usage,
    /// The rule settled before the budget was spent.
    pub stopped_early: bool,
}

/// When to stop drawing.
#[async_trait]
pub(crate) trait Settle: Send {
    /// Called after each sample ends; `fresh`: it became the last of `drawn.candidates`
    /// (else it failed). True: settled, stop drawing.
    async fn settle(&mut self, drawn: &mut Drawn, fresh: bool) -> Result<bool, StrategyError>;
}

/// Draws at most `max_samples` samples, `round_size` at a time, until `rule` settles.
/// Fails with `insufficient_candidates` only when every sample started failed.
pub(crate) async fn draw_in_rounds(
    messages: &[Message],
    max_samples: usize,
    round_size: usize,
    sampling: &SamplingParams,
    ctx: &Ctx<'_>,
    rule: &mut dyn Settle,
) -> Result<Drawn, StrategyError> {
    let plain = |sample: Sample| Ok(candidate(sample, ctx));
    draw_more_in_rounds(Drawn::default(), messages, max_samples, round_size, sampling, ctx, &plain, rule).await
}

/// [`draw_in_rounds`] going on from what `drawn` already holds (its next sample index is
/// `drawn.started`), each sample made a candidate by `make`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn draw_more_in_rounds(
    mut drawn: Drawn,
    messages: &[Message],
    max_samples: usize,
    round_size: usize,
    sampling: &SamplingParams,
    ctx: &Ctx<'_>,
    make: &(dyn Fn(Sample) -> Result<Candidate, StrategyError> + Sync),
    rule: &mut dyn Settle,
) -> Result<Drawn, StrategyError> {
    let mut settled = false;
    let mut why = None;
    while drawn.started < max_samples && !settled {
        let n = round_size.max(1).min(max_samples - drawn.started);
        let req = SampleRequest { messages: messages.to_vec(), n, params: sampling.clone(), first_index: drawn.started };
        let mut stream = ctx.generator.sample(req).await?;
        drawn.started += n;
        while let Some(result) = stream.next().await {
            let fresh = match result {
                Ok(sample) => {
                    drawn.candidates.push(make(sample)?);
                    true
                }
                Err(e) => {
                    drawn.n_failed += 1;
                    why.get_or_insert_with(|| e.1.to_string());
                    false
                }
            };
            if rule.settle(&mut drawn, fresh).await? {
                settled = true;
                // Failed samples were drawn too: counting only candidates would call a
                // stop on the budget's last sample early.
                drawn.stopped_early = drawn.candidates.len() + drawn.n_failed < max_samples;
                stream.cancel();
                break;
            }
        }
        drawn.usage += stream.finish().await?;
    }
    if drawn.candidates.is_empty() {
        return Err(StrategyError::InsufficientCandidates { attempted: drawn.started, why });
    }
    Ok(drawn)
}
