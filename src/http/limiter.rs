//! A sliding-window attempt counter, for login and sign-up throttling.
//!
//! Counts live in the process: behind several processes the limit applies
//! per process, which still caps a brute-force attempt at a small multiple.
//!
//! Keys are stored as fixed-size digests and the table has a ceiling, so a
//! flood of long or distinct keys (every submitted address is a key) costs
//! a bounded amount of memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// What is kept of a key: enough bits that two keys never meet by chance.
type KeyDigest = [u8; 16];

/// Keys tracked at once unless told otherwise.
const DEFAULT_CAPACITY: usize = 50_000;

/// Attempts remembered per key: enough for any limit in use, and a key
/// with no limit (counted only) cannot grow without end.
const MAX_KEPT: usize = 1024;

pub struct AttemptLimiter {
    max: usize,
    window: Duration,
    capacity: usize,
    attempts: Mutex<HashMap<KeyDigest, VecDeque<Instant>>>,
}

fn digest(key: &str) -> KeyDigest {
    let full = Sha256::digest(key.as_bytes());
    let mut short = [0u8; 16];
    short.copy_from_slice(&full[..16]);
    short
}

impl AttemptLimiter {
    /// `max` attempts per key within `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self::with_capacity(max, window, DEFAULT_CAPACITY)
    }

    /// As [`AttemptLimiter::new`], tracking at most `capacity` keys: past
    /// that, the key with the fewest attempts in the window is forgotten
    /// first, the one whose latest attempt is oldest among those.
    pub fn with_capacity(max: usize, window: Duration, capacity: usize) -> Self {
        AttemptLimiter {
            max,
            window,
            capacity: capacity.max(1),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyDigest, VecDeque<Instant>>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt of `key` if it is within the limit; false when the
    /// key has used up its window. Checking and counting are one step, so a
    /// burst of simultaneous attempts cannot all pass the check.
    pub fn try_acquire(&self, key: &str) -> bool {
        self.try_acquire_all(&[(key, self.max)])
    }

    /// Counts one attempt against every `(key, max)` pair, or against none
    /// when any of them is used up.
    pub fn try_acquire_all(&self, keys: &[(&str, usize)]) -> bool {
        let now = Instant::now();
        let digests: Vec<(KeyDigest, usize)> = keys.iter().map(|(k, m)| (digest(k), *m)).collect();
        let mut map = self.lock();
        let allowed = digests.iter().all(|(key, max)| match map.get_mut(key) {
            Some(times) => {
                self.forget_old(times, now);
                times.len() < *max
            }
            None => *max > 0,
        });
        if allowed {
            for (key, max) in digests {
                self.make_room(&mut map, &key, now);
                let times = map.entry(key).or_default();
                if times.len() >= max.min(MAX_KEPT) {
                    times.pop_front();
                }
                times.push_back(now);
            }
        }
        allowed
    }

    /// Attempts of `key` within the window.
    pub fn count(&self, key: &str) -> usize {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get_mut(&digest(key)) {
            Some(times) => {
                self.forget_old(times, now);
                times.len()
            }
            None => 0,
        }
    }

    /// Forgets `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.lock().remove(&digest(key));
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn forget_old(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            times.pop_front();
        }
    }

    /// Keeps the table under its ceiling before `key` is added.
    fn make_room(
        &self,
        map: &mut HashMap<KeyDigest, VecDeque<Instant>>,
        key: &KeyDigest,
        now: Instant,
    ) {
        if map.len() < self.capacity || map.contains_key(key) {
            return;
        }
        let window = self.window;
        map.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) <= window)
        });
        if map.len() < self.capacity {
            return;
        }
        // The key with the fewest attempts goes first, the oldest of those:
        // a flood of one-off keys must not push out the count of an account
        // under attack, which would start it again from nothing.
        let oldest = map
            .iter()
            .min_by_key(|(_, times)| (times.len(), times.back().copied()))
            .map(|(k, _)| *k);
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_within_the_window() {
        let l = AttemptLimiter::new(2, Duration::from_secs(60));
        assert!(l.try_acquire("a"));
        assert!(l.try_acquire("a"));
        assert!(!l.try_acquire("a"));
        assert_eq!(l.count("a"), 2, "a refused attempt is not counted");
        assert!(l.try_acquire("b"));
        l.clear("a");
        assert!(l.try_acquire("a"));
    }

    #[test]
    fn all_or_nothing_across_keys() {
        let l = AttemptLimiter::new(5, Duration::from_secs(60));
        assert!(l.try_acquire_all(&[("ip", 1), ("account", 3)]));
        assert!(!l.try_acquire_all(&[("ip", 1), ("account", 3)]));
        assert_eq!(
            l.count("account"),
            1,
            "nothing counted when one key is spent"
        );
    }

    #[test]
    fn the_table_stays_under_its_ceiling_with_huge_keys() {
        let l = AttemptLimiter::with_capacity(5, Duration::from_secs(60), 100);
        let long = "x".repeat(60_000);
        for i in 0..1000 {
            assert!(l.try_acquire(&format!("{long}{i}")));
        }
        assert!(l.len() <= 100, "{} keys kept", l.len());
        assert_eq!(l.count(&format!("{long}999")), 1, "the newest key is kept");
    }

    #[test]
    fn a_flood_of_one_off_keys_does_not_push_out_a_busy_one() {
        let l = AttemptLimiter::with_capacity(usize::MAX, Duration::from_secs(60), 100);
        for _ in 0..50 {
            assert!(l.try_acquire("account:target@example.com"));
        }
        for i in 0..10_000 {
            l.try_acquire(&format!("client:{i}"));
        }
        assert_eq!(l.count("account:target@example.com"), 50);
    }
}
