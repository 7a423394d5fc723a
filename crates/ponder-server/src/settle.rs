//! Settlement: what a request computes is charged to its key and counted in `/metrics` the
//! moment the backend reports it, however the request ends (answered, failed, timed out,
//! abandoned by its client mid-stream).
//!
//! A request holds a [`Meter`]: its key's reservation and the usage seen so far. Strategies
//! get a [`Metered`] generator, so every sample stream's usage and every step-session
//! call's usage passes through the meter. Usage is only known when the backend reports it,
//! so nothing is dropped mid-report: a sample stream dropped before its end (the client
//! left, the timeout fired, the strategy failed or stopped early) is cancelled and drained
//! on its own task, and each step-session call runs on its own task, so a call in flight
//! when its caller leaves still reports what it computed (at most one step more work than
//! abandoning the call, which the engine would have computed anyway). The rest of the
//! reservation goes back to the key when the last of them lets go of the meter.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::future::BoxFuture;
use ponder_core::{
    BranchId, CancelToken, GenError, GenEvent, Generator, GeneratorInfo, Message, SampleRequest, SampleStream, Step,
    StepParams, StepSession, Usage,
};

use crate::keys::Reservation;
use crate::metrics::Metrics;

/// What a key is charged for a usage: every prompt token computed or reused (what a server
/// without sharing would have prefilled, as `usage.prompt_tokens` says) plus every
/// generated token.
pub fn charged(u: &Usage) -> u64 {
    u.prompt_computed + u.prompt_reused + u.completion
}

/// One request's account: charges its key and counts the metrics as usage is reported.
pub struct Meter {
    reservation: Reservation,
    metrics: Arc<Metrics>,
    seen: Mutex<Usage>,
}

impl Meter {
    pub fn new(reservation: Reservation, metrics: Arc<Metrics>) -> Arc<Meter> {
        Arc::new(Meter { reservation, metrics, seen: Mutex::new(Usage::default()) })
    }

    /// Work the backend reports as done: charged and counted now.
    pub fn add(&self, u: Usage) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) += u;
        self.reservation.charge(charged(&u));
        self.metrics.tokens(&u);
    }

    /// A finished request's own usage: whatever it reports beyond what passed through the
    /// generator (a reward model's passes) is added, so that the key is never charged less
    /// than the response says.
    pub fn reconcile(&self, reported: &Usage) {
        let seen = *self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        self.add(since(&seen, reported));
    }
}

/// `after` less `before`, field by field (wall time left out: it is not work).
fn since(before: &Usage, after: &Usage) -> Usage {
    Usage {
        prompt_computed: after.prompt_computed.saturating_sub(before.prompt_computed),
        prompt_reused: after.prompt_reused.saturating_sub(before.prompt_reused),
        completion: after.completion.saturating_sub(before.completion),
        scorer_passes: after.scorer_passes.saturating_sub(before.scorer_passes),
        wall_ms: 0,
        unreported: after.unreported.saturating_sub(before.unreported),
        thinking: after.thinking.saturating_sub(before.thinking),
        thinking_uncounted: after
            .thinking_uncounted
            .saturating_sub(before.thinking_uncounted),
        dropped: after.dropped.saturating_sub(before.dropped),
    }
}

/// A generator whose every reported usage goes through a request's meter.
pub struct Metered {
    pub inner: Arc<dyn Generator>,
    pub meter: Arc<Meter>,
}

/// A sample stream between its start and its usage report.
struct Running {
    inner: Option<SampleStream>,
    cancel: CancelToken,
    meter: Arc<Meter>,
}

impl Drop for Running {
    /// Dropped before the backend reported its usage: cancel what still runs and wait for
    /// the report on another task.
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        let meter = self.meter.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                inner.cancel();
                if let Ok(u) = inner.finish().await {
                    meter.add(u);
                }
            });
        }
    }
}

fn lost(e: tokio::task::JoinError) -> GenError {
    GenError::Backend(format!("a backend call did not finish: {e}"))
}

#[async_trait]
impl Generator for Metered {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        let inner = self.inner.sample(req).await?;
        // The inner stream's own token: cancels and stops reach the backend at once.
        let cancel = inner.token();
        let running = Running { inner: Some(inner), cancel: cancel.clone(), meter: self.meter.clone() };
        let events = futures::stream::unfold(running, |mut r| async move {
            let inner = r.inner.as_mut()?;
            if r.cancel.is_cancelled() {
                inner.cancel();
            }
            match inner.next().await {
                Some(Ok(s)) => Some((GenEvent::Sample(s), r)),
                Some(Err((index, error))) => Some((GenEvent::Failed { index, error }, r)),
                None => {
                    let usage = r.inner.take()?.finish().await.ok()?;
                    r.meter.add(usage);
                    Some((GenEvent::Done(usage), r))
                }
            }
        });
        Ok(SampleStream::new(events, cancel))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        let (generator, messages, meter) = (self.inner.clone(), messages.to_vec(), self.meter.clone());
        // On its own task: a session opened after its caller left is still counted and closed.
        let inner = tokio::spawn(async move {
            let s = generator.open(&messages, seed).await?;
            meter.add(s.usage());
            Ok::<_, GenError>(s)
        })
        .await
        .map_err(lost)??;
        let (root, usage) = (inner.root(), inner.usage());
        Ok(Box::new(MeteredSession { inner: Arc::new(tokio::sync::Mutex::new(inner)), meter: self.meter.clone(), root, usage }))
    }
}

struct MeteredSession {
    inner: Arc<tokio::sync::Mutex<Box<dyn StepSession>>>,
    meter: Arc<Meter>,
    root: BranchId,
    /// The inner session's usage after the last call.
    usage: Usage,
}

impl MeteredSession {
    /// Runs one call on its own task and meters the session's growth in usage plus what the
    /// call reports apart (`probe`).
    async fn call<T: Send + 'static>(
        &mut self,
        f: impl for<'a> FnOnce(&'a mut Box<dyn StepSession>) -> BoxFuture<'a, Result<(T, Usage), GenError>> + Send + 'static,
    ) -> Result<T, GenError> {
        let (inner, meter) = (self.inner.clone(), self.meter.clone());
        let task = tokio::spawn(async move {
            let mut s = inner.lock().await;
            let before = s.usage();
            let r = f(&mut s).await;
            let after = s.usage();
            let apart = r.as_ref().map(|(_, u)| *u).unwrap_or_default();
            meter.add(since(&before, &after) + apart);
            (r.map(|(v, _)| v), after)
        });
        let (r, after) = task.await.map_err(lost)?;
        self.usage = after;
        r
    }
}

#[async_trait]
impl StepSession for MeteredSession {
    fn root(&self) -> BranchId {
        self.root
    }
    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        self.call(move |s| Box::pin(async move { Ok((s.fork(branch, n).await?, Usage::default())) })).await
    }
    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError> {
        let (branches, params) = (branches.to_vec(), params.clone());
        self.call(move |s| Box::pin(async move { Ok((s.extend(&branches, &params).await?, Usage::default())) })).await
    }
    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        self.call(move |s| Box::pin(async move { Ok((s.rollback(branch, n_tokens).await?, Usage::default())) })).await
    }
    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError> {
        let branches = branches.to_vec();
        self.call(move |s| Box::pin(async move { Ok((s.release(&branches).await?, Usage::default())) })).await
    }
    fn usage(&self) -> Usage {
        self.usage
    }
    async fn append(&mut self, branch: BranchId, text: &str) -> Result<(), GenError> {
        let text = text.to_string();
        self.call(move |s| Box::pin(async move { Ok((s.append(branch, &text).await?, Usage::default())) })).await
    }
    async fn probe(
        &mut self,
        branches: &[BranchId],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        let (branches, suffix, candidates) = (branches.to_vec(), suffix.to_string(), candidates.to_vec());
        self.call(move |s| {
            Box::pin(async move {
                let (lps, u) = s.probe(&branches, &suffix, &candidates).await?;
                Ok(((lps, u), u))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ponder_core::testing::{Choice, ScriptedGenerator};
    use ponder_core::{Message, SamplingParams};

    use super::*;
    use crate::keys::Keys;

    fn meter() -> (Arc<Keys>, Arc<Meter>) {
        let keys = Arc::new(Keys::new(&[crate::config::KeyConfig { key: "k".into(), token_budget: Some(1000) }]));
        // The key is configured just above and 100 fits its budget of 1000.
        let reservation = keys.reserve(Some("k"), 100).unwrap();
        (keys.clone(), Meter::new(reservation, Arc::default()))
    }

    #[tokio::test]
    async fn a_stream_dropped_midway_is_drained_and_charged() {
        let (keys, meter) = meter();
        let g = Metered { inner: Arc::new(ScriptedGenerator::new(vec![Choice::new("The answer is 5", 1.0, -0.1)])), meter };
        let req = SampleRequest { messages: vec![Message::user("q")], n: 6, params: SamplingParams::default(), first_index: 0 };
        let mut stream = g.sample(req).await.unwrap(); // the scripted generator accepts any request
        assert!(stream.next().await.unwrap().is_ok());
        drop((stream, g));
        for _ in 0..100 {
            if keys.reserved("k") == Some(0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(keys.reserved("k"), Some(0));
        assert!(keys.used("k").unwrap() > 0, "{:?}", keys.used("k"));
    }

    #[test]
    fn reconcile_adds_only_what_was_not_seen() {
        let (keys, meter) = meter();
        meter.add(Usage { prompt_computed: 10, completion: 5, ..Usage::default() });
        meter.reconcile(&Usage { prompt_computed: 10, completion: 5, scorer_passes: 3, ..Usage::default() });
        meter.reconcile(&Usage { prompt_computed: 4, completion: 7, ..Usage::default() });
        assert_eq!(keys.used("k"), Some(17));
        assert_eq!(keys.reserved("k"), Some(83));
        drop(meter);
        assert_eq!((keys.used("k"), keys.reserved("k")), (Some(17), Some(0)));
    }
}
