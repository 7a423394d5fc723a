//! A generator that serves already-drawn samples of one request and forwards the rest:
//! how `auto` hands its probe samples to the strategy it picked.

use std::collections::VecDeque;

use async_trait::async_trait;

use crate::generator::{
    CancelToken, GenError, GenEvent, Generator, GeneratorInfo, Sample, SampleRequest, SampleStream, SamplingParams,
    StepSession,
};
use crate::{Message, Usage};

/// A generator that serves already-drawn samples of one request and forwards the rest.
pub(crate) struct Replay<'a> {
    pub inner: &'a dyn Generator,
    pub messages: Vec<Message>,
    pub params: SamplingParams,
    /// In index order.
    pub probes: Vec<Sample>,
}

#[async_trait]
impl Generator for Replay<'_> {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        if req.messages != self.messages || req.params != self.params {
            return self.inner.sample(req).await;
        }
        let range = req.first_index..req.first_index + req.n;
        let cached: VecDeque<Sample> = self.probes.iter().filter(|s| range.contains(&s.index)).cloned().collect();
        // The indices not served from the probes, as runs of consecutive indices.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in range.clone() {
            if cached.iter().any(|s| s.index == i) {
                continue;
            }
            match runs.last_mut() {
                Some((start, n)) if *start + *n == i => *n += 1,
                _ => runs.push((i, 1)),
            }
        }
        let mut inners = VecDeque::new();
        for (first_index, n) in runs {
            let sub = SampleRequest { messages: req.messages.clone(), n, params: req.params.clone(), first_index };
            inners.push_back(self.inner.sample(sub).await?);
        }
        let cancel = CancelToken::default();
        let state = ReplayState { cached, inners, current: None, usage: Usage::default(), token: cancel.clone(), stops_seen: 0, done: false };
        let events = futures::stream::unfold(state, |mut st| async move {
            if st.token.is_cancelled() {
                st.cached.clear();
            }
            // A stopped index is in at most one inner stream; the others ignore it.
            let stops = st.token.stops_since(st.stops_seen);
            st.stops_seen += stops.len();
            for i in stops {
                st.current.iter().chain(&st.inners).for_each(|s| s.stop(i));
            }
            if let Some(s) = st.cached.pop_front() {
                return Some((GenEvent::Sample(s), st));
            }
            loop {
                if st.current.is_none() {
                    st.current = st.inners.pop_front();
                }
                let Some(cur) = st.current.as_mut() else {
                    if st.done {
                        return None;
                    }
                    st.done = true;
                    return Some((GenEvent::Done(st.usage), st));
                };
                if st.token.is_cancelled() {
                    cur.cancel();
                }
                match cur.next().await {
                    Some(Ok(s)) => return Some((GenEvent::Sample(s), st)),
                    Some(Err((index, error))) => return Some((GenEvent::Failed { index, error }, st)),
                    None => {
                        let finished = st.current.take().expect("current is set");
                        st.usage += finished.finish().await.unwrap_or_default();
                    }
                }
            }
        });
        Ok(SampleStream::new(events, cancel))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        self.inner.open(messages, seed).await
    }
}

struct ReplayState {
    cached: VecDeque<Sample>,
    inners: VecDeque<SampleStream>,
    current: Option<SampleStream>,
    usage: Usage,
    token: CancelToken,
    /// Stops of single samples already passed on to the inner streams.
    stops_seen: usize,
    done: bool,
}

