//! The per-connection command rate limit: a token bucket, `command_rate` commands per second
//! with room for `command_burst` at once. A command over the limit is answered with error 111;
//! a client that sends another `command_burst` commands in a row while over it is not backing
//! off, and is disconnected with 3013.

use std::time::Instant;

/// What the limiter says of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Run,
    /// Answer error 111.
    Refuse,
    /// Disconnect 3013.
    Disconnect,
}

#[derive(Debug)]
pub(crate) struct CommandRate {
    /// Commands per second; 0 turns the limit off.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Commands refused since the last one that ran.
    refused: u32,
}

impl CommandRate {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        CommandRate {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
            refused: 0,
        }
    }

    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        if self.rate == 0.0 {
            return Verdict::Run;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Verdict::Run;
        }
        self.refused += 1;
        if f64::from(self.refused) > self.burst {
            Verdict::Disconnect
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_commands_are_refused_then_the_client_is_cut_off() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(10, 5, t0);
        for _ in 0..5 {
            assert_eq!(rate.check(t0), Verdict::Run);
        }
        for _ in 0..5 {
            assert_eq!(rate.check(t0), Verdict::Refuse);
        }
        assert_eq!(rate.check(t0), Verdict::Disconnect);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(10, 1, t0);
        assert_eq!(rate.check(t0), Verdict::Run);
        assert_eq!(rate.check(t0), Verdict::Refuse);
        assert_eq!(rate.check(t0 + Duration::from_millis(100)), Verdict::Run);
        // A client that keeps to the rate is never refused.
        for i in 2..100 {
            assert_eq!(
                rate.check(t0 + Duration::from_millis(100 * i)),
                Verdict::Run
            );
        }
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(0, 0, t0);
        assert!((0..10_000).all(|_| rate.check(t0) == Verdict::Run));
    }
}
