//! A sliding-window attempt counter, for login and sign-up throttling.
//!
//! Counts live in the process: behind several processes the limit applies
//! per process, which still caps a brute-force attempt at a small multiple.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct AttemptLimiter {
    max: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl AttemptLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        AttemptLimiter {
            max,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may try again now (without counting this as a try).
    pub fn allows(&self, key: &str) -> bool {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match map.get_mut(key) {
            Some(times) => {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    times.pop_front();
                }
                times.len() < self.max
            }
            None => true,
        }
    }

    /// Counts one attempt of `key`.
    pub fn record(&self, key: &str) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        // Keep memory bounded under a flood of distinct keys.
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, times| times.back().is_some_and(|t| t.elapsed() <= window));
        }
        map.entry(key.to_string())
            .or_default()
            .push_back(Instant::now());
    }

    /// Forgets `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_within_the_window() {
        let l = AttemptLimiter::new(2, Duration::from_secs(60));
        assert!(l.allows("a"));
        l.record("a");
        l.record("a");
        assert!(!l.allows("a"));
        assert!(l.allows("b"));
        l.clear("a");
        assert!(l.allows("a"));
    }
}
