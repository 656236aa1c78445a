//! When to try a temporarily failed message again.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped at `max`,
/// then drawn uniformly from its upper half so that a burst of failures does
/// not come back as a burst.
pub fn retry_delay(attempt: i64, base_secs: f64, max_secs: f64) -> Duration {
    let exp = (attempt.clamp(1, 32) - 1) as i32;
    let full = (base_secs * 2f64.powi(exp)).min(max_secs).max(0.0);
    let jittered = if full > 0.0 {
        rand::thread_rng().gen_range(full / 2.0..=full)
    } else {
        0.0
    };
    Duration::from_secs_f64(jittered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_stays_under_the_cap() {
        for attempt in 1..10 {
            let d = retry_delay(attempt, 30.0, 3600.0).as_secs_f64();
            let full = (30.0 * 2f64.powi(attempt as i32 - 1)).min(3600.0);
            assert!(d >= full / 2.0 && d <= full, "attempt {attempt}: {d}");
        }
        assert_eq!(retry_delay(3, 0.0, 10.0), Duration::ZERO);
    }
}
