//! Fault injection, by rate (seeded) or by script (the Nth matching request):
//! 429 with Retry-After, 5xx, slow and truncated responses, token expiry.

use std::sync::Mutex;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ids::{self, SimRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// 429 with `Retry-After`, in the API's own error shape.
    Throttle { retry_after_secs: u64 },
    /// Any status (500, 503, 504 ...) in the API's error shape, with an optional `Retry-After`.
    Status {
        status: u16,
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// The response is held back this long (real time, not simulated).
    Slow { delay_ms: u64 },
    /// The response announces its full length and then stops halfway.
    Truncate,
    /// The bearer token presented is expired from this request on, as if its
    /// lifetime ended mid-pagination; the request gets Graph's 401.
    ExpireToken,
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Throttle { .. } => "throttle",
            FaultKind::Status { .. } => "status",
            FaultKind::Slow { .. } => "slow",
            FaultKind::Truncate => "truncate",
            FaultKind::ExpireToken => "expire_token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Applies to requests whose path starts with this ("" = every request).
    #[serde(default)]
    pub path: String,
    #[serde(rename = "fault")]
    pub kind: FaultKind,
    /// Fires on each matching request with this probability (seeded).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Fires on these matching requests, counted from 1 (`[2, 3]`).
    #[serde(default)]
    pub nth: Vec<u64>,
    /// Fires at most this many times.
    #[serde(default)]
    pub times: Option<u64>,
}

impl FaultSpec {
    pub fn new(path: &str, kind: FaultKind) -> Self {
        FaultSpec { path: path.to_owned(), kind, rate: None, nth: Vec::new(), times: None }
    }

    /// Only on the given matching requests (1-based).
    pub fn on(mut self, nth: &[u64]) -> Self {
        self.nth = nth.to_vec();
        self
    }

    pub fn at_rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }
}

#[derive(Debug)]
struct Armed {
    spec: FaultSpec,
    seen: u64,
    fired: u64,
}

#[derive(Debug)]
pub struct FaultEngine {
    inner: Mutex<(Vec<Armed>, SimRng)>,
}

impl FaultEngine {
    pub fn new(seed: u64, specs: &[FaultSpec]) -> Self {
        let armed = specs.iter().cloned().map(|spec| Armed { spec, seen: 0, fired: 0 }).collect();
        FaultEngine { inner: Mutex::new((armed, ids::rng(seed, 99))) }
    }

    pub fn push(&self, spec: FaultSpec) {
        self.lock().0.push(Armed { spec, seen: 0, fired: 0 });
    }

    pub fn clear(&self) {
        self.lock().0.clear();
    }

    /// The first fault that fires for this request, if any. Every matching
    /// fault counts the request, fired or not, so `nth` stays predictable.
    pub fn decide(&self, path: &str) -> Option<FaultKind> {
        let mut guard = self.lock();
        let (armed, rng) = &mut *guard;
        let mut chosen = None;
        for a in armed.iter_mut() {
            if !path.starts_with(&a.spec.path) {
                continue;
            }
            a.seen += 1;
            if chosen.is_some() || a.spec.times.is_some_and(|t| a.fired >= t) {
                continue;
            }
            let by_nth = a.spec.nth.is_empty() || a.spec.nth.contains(&a.seen);
            let by_rate = a.spec.rate.is_none_or(|r| rng.gen_bool(r.clamp(0.0, 1.0)));
            if by_nth && by_rate {
                a.fired += 1;
                chosen = Some(a.spec.kind.clone());
            }
        }
        chosen
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Armed>, SimRng)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_faults_fire_on_the_named_requests_only() {
        let e = FaultEngine::new(1, &[FaultSpec::new("/v1.0/", FaultKind::Throttle { retry_after_secs: 2 }).on(&[2, 3])]);
        let got: Vec<bool> = (0..5).map(|_| e.decide("/v1.0/security/alerts_v2").is_some()).collect();
        assert_eq!(got, vec![false, true, true, false, false]);
        assert_eq!(e.decide("/tenant/oauth2/v2.0/token"), None);
    }

    #[test]
    fn rate_faults_are_seeded_and_bounded_by_times() {
        let run = || {
            let e = FaultEngine::new(9, &[FaultSpec::new("", FaultKind::Truncate).at_rate(0.5).times(3)]);
            (0..40).map(|_| e.decide("/x").is_some()).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert_eq!(a.iter().filter(|x| **x).count(), 3);
    }

    #[test]
    fn scenario_json_shape() {
        let s: Result<FaultSpec, _> = serde_json::from_str(
            r#"{"path": "/v1.0/security", "fault": {"type": "status", "status": 503, "retry_after_secs": 1}, "rate": 0.1}"#,
        );
        assert_eq!(s.ok().map(|s| s.kind), Some(FaultKind::Status { status: 503, retry_after_secs: Some(1) }));
        assert!(serde_json::from_str::<FaultSpec>(r#"{"fault": {"type": "explode"}}"#).is_err());
        assert!(serde_json::from_str::<FaultSpec>(r#"{"fault": {"type": "truncate"}, "rate": 0.1, "typo": 1}"#).is_err());
    }
}
