//! Progress of a running strategy, observed at the generator boundary: every sample that
//! finishes or fails, every early stop (a stream cancelled with samples outstanding), every
//! sample or branch dropped before its end, every step of a search. Strategies are
//! unchanged; the gateway streams what passes through.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use ponder_core::{
    BranchId, CancelToken, FinishReason, GenError, GenEvent, Generator, GeneratorInfo, Message, Sample, SampleRequest, SampleStream, Step,
    StepParams, StepSession, Usage,
};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone)]
pub enum Progress {
    /// A sample request was accepted (the backend validated it).
    Started { n: usize },
    Sample(Sample),
    Failed { index: usize, error: String },
    /// The strategy cancelled a stream with `outstanding` samples still running.
    EarlyStop { outstanding: usize },
    /// One step of a search: how many branches were extended and how many of them ended.
    Steps { extended: usize, finished: usize, tokens: usize },
    /// A sample ended before its own end (`why`: `cancelled`, `stopped` or
    /// `low_confidence`); its `tokens` count in `Usage::dropped`.
    Dropped { index: usize, tokens: usize, why: &'static str },
    /// A search released branches that had not ended; `tokens`: what that added to
    /// `Usage::dropped` (their generated tokens no other branch holds).
    Pruned { branches: Vec<BranchId>, tokens: u64 },
}

/// Why a sample counts as dropped, as the progress stream names it.
fn drop_reason(finish: &FinishReason) -> Option<&'static str> {
    match finish {
        FinishReason::Cancelled => Some("cancelled"),
        FinishReason::Stopped => Some("stopped"),
        FinishReason::LowConfidence => Some("low_confidence"),
        FinishReason::Eos | FinishReason::Stop(_) | FinishReason::StepEnd | FinishReason::Length | FinishReason::ContextFull => None,
    }
}

pub struct Observed {
    pub inner: Arc<dyn Generator>,
    pub tx: UnboundedSender<Progress>,
}

struct Watch {
    inner: Option<SampleStream>,
    outer: CancelToken,
    tx: UnboundedSender<Progress>,
    n: usize,
    seen: usize,
    cancel_sent: bool,
}

#[async_trait]
impl Generator for Observed {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        let n = req.n;
        let inner = self.inner.sample(req).await?;
        let _ = self.tx.send(Progress::Started { n });
        // The inner stream's token: a stop reaches the backend at once.
        let outer = inner.token();
        let watch = Watch { inner: Some(inner), outer: outer.clone(), tx: self.tx.clone(), n, seen: 0, cancel_sent: false };
        let events = futures::stream::unfold(watch, |mut w| async move {
            let mut inner = w.inner.take()?;
            if w.outer.is_cancelled() && !w.cancel_sent {
                inner.cancel();
                w.cancel_sent = true;
                if w.seen < w.n {
                    let _ = w.tx.send(Progress::EarlyStop { outstanding: w.n - w.seen });
                }
            }
            match inner.next().await {
                Some(Ok(s)) => {
                    w.seen += 1;
                    let p = match drop_reason(&s.finish) {
                        Some(why) => Progress::Dropped { index: s.index, tokens: s.n_tokens, why },
                        None => Progress::Sample(s.clone()),
                    };
                    let _ = w.tx.send(p);
                    w.inner = Some(inner);
                    Some((GenEvent::Sample(s), w))
                }
                Some(Err((index, error))) => {
                    w.seen += 1;
                    let _ = w.tx.send(Progress::Failed { index, error: error.to_string() });
                    w.inner = Some(inner);
                    Some((GenEvent::Failed { index, error }, w))
                }
                // The stream is over: its usage ends ours.
                None => inner.finish().await.ok().map(|u| (GenEvent::Done(u), w)),
            }
        });
        Ok(SampleStream::new(events, outer))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        let inner = self.inner.open(messages, seed).await?;
        Ok(Box::new(ObservedSession { inner, tx: self.tx.clone(), ended: HashSet::new() }))
    }
}

struct ObservedSession {
    inner: Box<dyn StepSession>,
    tx: UnboundedSender<Progress>,
    /// Branches whose last step ended them on their own.
    ended: HashSet<BranchId>,
}

#[async_trait]
impl StepSession for ObservedSession {
    fn root(&self) -> BranchId {
        self.inner.root()
    }
    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        self.inner.fork(branch, n).await
    }
    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError> {
        let steps = self.inner.extend(branches, params).await?;
        for s in &steps {
            if s.is_final() && !s.finish.is_dropped() {
                self.ended.insert(s.branch);
            } else {
                self.ended.remove(&s.branch);
            }
        }
        let _ = self.tx.send(Progress::Steps {
            extended: steps.len(),
            finished: steps.iter().filter(|s| s.is_final()).count(),
            tokens: steps.iter().map(|s| s.n_tokens).sum(),
        });
        Ok(steps)
    }
    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        self.inner.rollback(branch, n_tokens).await
    }
    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError> {
        let before = self.inner.usage().dropped;
        self.inner.release(branches).await?;
        let pruned: Vec<BranchId> = branches.iter().copied().filter(|b| !self.ended.remove(b)).collect();
        if !pruned.is_empty() {
            let tokens = self.inner.usage().dropped.saturating_sub(before);
            let _ = self.tx.send(Progress::Pruned { branches: pruned, tokens });
        }
        Ok(())
    }
    fn usage(&self) -> Usage {
        self.inner.usage()
    }
    async fn append(&mut self, branch: BranchId, text: &str) -> Result<(), GenError> {
        self.inner.append(branch, text).await
    }
    async fn probe(
        &mut self,
        branches: &[BranchId],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        self.inner.probe(branches, suffix, candidates).await
    }
}

#[cfg(test)]
mod tests {
    use ponder_core::testing::{Choice, ScriptedGenerator};
    use ponder_core::{Message, SamplingParams};

    use super::*;

    #[tokio::test]
    async fn reports_samples_failures_and_early_stops() {
        let g = ScriptedGenerator::new(vec![Choice::new("The answer is 5", 1.0, -0.1)]).failing(vec![1]);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let observed = Observed { inner: Arc::new(g), tx };
        let req = SampleRequest { messages: vec![Message::user("q")], n: 6, params: SamplingParams::default(), first_index: 0 };
        let mut stream = observed.sample(req).await.unwrap();
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.unwrap().is_err());
        stream.cancel();
        let usage = stream.finish().await.unwrap();
        assert_eq!(usage.completion, 4);
        let mut got = Vec::new();
        while let Ok(p) = rx.try_recv() {
            got.push(p);
        }
        assert!(matches!(got[0], Progress::Started { n: 6 }));
        assert!(matches!(got[1], Progress::Sample(_)));
        assert!(matches!(got[2], Progress::Failed { index: 1, .. }));
        assert!(matches!(got[3], Progress::EarlyStop { outstanding: 4 }), "{got:?}");
        assert_eq!(got.len(), 4);
    }
}
