//! Progress of a running strategy, observed at the generator boundary: every sample that
//! finishes or fails, every early stop (a stream cancelled with samples outstanding), every
//! step of a search. Strategies are unchanged; the gateway streams what passes through.

use std::sync::Arc;

use async_trait::async_trait;
use ponder_core::{
    BranchId, CancelToken, GenError, GenEvent, Generator, GeneratorInfo, Message, Sample, SampleRequest, SampleStream, Step,
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
        let outer = CancelToken::default();
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
                    let _ = w.tx.send(Progress::Sample(s.clone()));
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
        Ok(Box::new(ObservedSession { inner, tx: self.tx.clone() }))
    }
}

struct ObservedSession {
    inner: Box<dyn StepSession>,
    tx: UnboundedSender<Progress>,
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
        self.inner.release(branches).await
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
