//! When a crashed dyno is started again.

use std::time::Duration;

/// Longest wait before restarting a crashing dyno (Heroku's cool-off).
pub const MAX_BACKOFF: Duration = Duration::from_secs(20 * 60);

/// How long to wait before the restart after `crashes` earlier crashes:
/// at once the first time, then `base`, doubling, up to [`MAX_BACKOFF`].
pub fn backoff(base: Duration, crashes: u32) -> Duration {
    match crashes {
        0 => Duration::ZERO,
        n => base
            .saturating_mul(1u32 << (n - 1).min(20))
            .min(MAX_BACKOFF),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let b = Duration::from_secs(1);
        assert_eq!(backoff(b, 0), Duration::ZERO);
        assert_eq!(backoff(b, 1), Duration::from_secs(1));
        assert_eq!(backoff(b, 2), Duration::from_secs(2));
        assert_eq!(backoff(b, 5), Duration::from_secs(16));
        assert_eq!(backoff(b, 40), MAX_BACKOFF);
    }
}
