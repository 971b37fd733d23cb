//! A circuit breaker per gateway: after `failures` failed calls within
//! `window` it opens, and calls skip the gateway (its fallback is tried
//! instead) for `cooldown`; then it lets one call through (half-open): a
//! success closes it, a failure opens it again. Pure: the time comes in as
//! a value, so tests drive it without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures: usize,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is out; others wait for its result.
    HalfOpen,
}

impl State {
    /// For the `gateway_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open { .. } => 1,
            State::HalfOpen => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: State,
    recent: VecDeque<Instant>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Breaker {
        Breaker {
            policy,
            state: State::Closed,
            recent: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call may go to the gateway now (an open breaker whose
    /// cooldown passed lets this one through, as the half-open probe).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    pub fn success(&mut self) {
        self.state = State::Closed;
        self.recent.clear();
    }

    pub fn failure(&mut self, now: Instant) {
        if self.state == State::HalfOpen {
            self.open(now);
            return;
        }
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.failures {
            self.open(now);
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.policy.cooldown,
        };
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        }
    }

    #[test]
    fn opens_after_failures_in_the_window_then_probes_once_and_closes_on_success() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(policy());
        b.failure(t0);
        b.failure(t0 + s(1));
        assert!(b.allow(t0 + s(2)), "two failures: still closed");
        b.failure(t0 + s(2));
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(!b.allow(t0 + s(3)), "open: calls skip it");
        assert!(b.allow(t0 + s(7)), "cooldown over: one probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(!b.allow(t0 + s(7)), "only one probe at a time");
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert!(b.allow(t0 + s(8)));
    }

    #[test]
    fn a_failed_probe_opens_it_again_and_old_failures_age_out() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(policy());
        b.failure(t0);
        b.failure(t0 + s(1));
        b.failure(t0 + s(20));
        assert_eq!(b.state(), State::Closed, "the first two left the window");
        b.failure(t0 + s(21));
        b.failure(t0 + s(22));
        assert!(!b.allow(t0 + s(23)));
        assert!(b.allow(t0 + s(28)));
        b.failure(t0 + s(28));
        assert!(matches!(b.state(), State::Open { until } if until == t0 + s(33)));
    }
}
