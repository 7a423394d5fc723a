//! Counters for `GET /metrics` in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use ponder_core::Usage;

const BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
    samples: AtomicU64,
    samples_failed: AtomicU64,
    early_stops: AtomicU64,
    prompt_computed: AtomicU64,
    prompt_reused: AtomicU64,
    completion: AtomicU64,
    scorer_passes: AtomicU64,
}

/// Counts a request as in flight until dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((endpoint.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut d) = self.durations.lock() {
            let h = d.entry(endpoint.to_string()).or_insert_with(|| Histogram { counts: vec![0; BUCKETS.len()], ..Histogram::default() });
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.n += 1;
        }
    }

    /// A finished strategy's samples.
    pub fn outcome(&self, samples: usize, failed: usize, stopped_early: bool) {
        self.samples.fetch_add(samples as u64, Ordering::Relaxed);
        self.samples_failed.fetch_add(failed as u64, Ordering::Relaxed);
        self.early_stops.fetch_add(u64::from(stopped_early), Ordering::Relaxed);
    }

    /// Work as the backend reports it, on every route, whether or not its request finishes.
    pub fn tokens(&self, usage: &Usage) {
        self.prompt_computed.fetch_add(usage.prompt_computed, Ordering::Relaxed);
        self.prompt_reused.fetch_add(usage.prompt_reused, Ordering::Relaxed);
        self.completion.fetch_add(usage.completion, Ordering::Relaxed);
        self.scorer_passes.fetch_add(usage.scorer_passes, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP ponder_requests_total HTTP requests by endpoint and status.");
        let _ = writeln!(s, "# TYPE ponder_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            for ((e, code), n) in r.iter() {
                let _ = writeln!(s, "ponder_requests_total{{endpoint=\"{e}\",status=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(s, "# HELP ponder_request_duration_seconds Time to the full answer.");
        let _ = writeln!(s, "# TYPE ponder_request_duration_seconds histogram");
        if let Ok(d) = self.durations.lock() {
            for (e, h) in d.iter() {
                for (b, c) in BUCKETS.iter().zip(&h.counts) {
                    let _ = writeln!(s, "ponder_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"{b}\"}} {c}");
                }
                let _ = writeln!(s, "ponder_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {}", h.n);
                let _ = writeln!(s, "ponder_request_duration_seconds_sum{{endpoint=\"{e}\"}} {}", h.sum);
                let _ = writeln!(s, "ponder_request_duration_seconds_count{{endpoint=\"{e}\"}} {}", h.n);
            }
        }
        let gauge = |s: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(&mut s, "ponder_requests_in_flight", "Requests being answered.", self.in_flight.load(Ordering::Relaxed));
        let counter = |s: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        };
        counter(&mut s, "ponder_samples_total", "Samples that finished.", &self.samples);
        counter(&mut s, "ponder_samples_failed_total", "Samples that failed (partial-failure rule).", &self.samples_failed);
        counter(&mut s, "ponder_early_stops_total", "Requests whose strategy stopped before its budget.", &self.early_stops);
        let _ = writeln!(s, "# HELP ponder_tokens_total Tokens by kind, counted where the work happened.");
        let _ = writeln!(s, "# TYPE ponder_tokens_total counter");
        for (kind, v) in
            [("prompt_computed", &self.prompt_computed), ("prompt_reused", &self.prompt_reused), ("completion", &self.completion)]
        {
            let _ = writeln!(s, "ponder_tokens_total{{kind=\"{kind}\"}} {}", v.load(Ordering::Relaxed));
        }
        counter(&mut s, "ponder_scorer_passes_total", "Scorer forward passes.", &self.scorer_passes);
        s
    }
}
