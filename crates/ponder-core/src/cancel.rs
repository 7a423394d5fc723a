//! [`CancelToken`]: how a strategy tells a backend to stop samples, all of them or one by one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Cooperative cancellation shared between a strategy and a backend: of every sample
/// still running, or of samples one by one.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    all: AtomicBool,
    /// Sample indices stopped one by one, in the order asked.
    stops: Mutex<Vec<usize>>,
    n_stops: AtomicUsize,
}

impl CancelToken {
    pub fn cancel(&self) {
        self.0.all.store(true, Ordering::Release);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.all.load(Ordering::Acquire)
    }

    /// Asks the backend to end sample `index` alone (see [`crate::SampleStream::stop`]).
    pub fn stop(&self, index: usize) {
        // A poisoned lock only means another holder panicked; the list itself is whole.
        let mut stops = self.0.stops.lock().unwrap_or_else(PoisonError::into_inner);
        if !stops.contains(&index) {
            stops.push(index);
            self.0.n_stops.store(stops.len(), Ordering::Release);
        }
    }

    pub fn is_stopped(&self, index: usize) -> bool {
        self.0.n_stops.load(Ordering::Acquire) > 0 && self.0.stops.lock().unwrap_or_else(PoisonError::into_inner).contains(&index)
    }

    /// The samples stopped after the first `seen` stops: a backend polls with the count it
    /// has handled (cheap while nothing new was asked).
    pub fn stops_since(&self, seen: usize) -> Vec<usize> {
        if self.0.n_stops.load(Ordering::Acquire) <= seen {
            return Vec::new();
        }
        self.0.stops.lock().unwrap_or_else(PoisonError::into_inner).get(seen..).map_or_else(Vec::new, <[usize]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_kept_once_in_order_and_read_from_where_a_backend_left_off() {
        let t = CancelToken::default();
        assert!(t.stops_since(0).is_empty() && !t.is_stopped(2));
        t.stop(2);
        t.stop(0);
        t.stop(2);
        let clone = t.clone();
        assert_eq!(clone.stops_since(0), vec![2, 0]);
        assert_eq!(clone.stops_since(1), vec![0]);
        assert!(clone.stops_since(2).is_empty() && clone.stops_since(9).is_empty());
        assert!(clone.is_stopped(0) && clone.is_stopped(2) && !clone.is_stopped(1));
        assert!(!clone.is_cancelled(), "stopping samples is not cancelling the rest");
        t.cancel();
        assert!(clone.is_cancelled());
    }
}
