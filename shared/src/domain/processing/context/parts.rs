//! The parts of the context an integration can switch (`enrichment.parts`), and how each went
//! for an alert: every lookup's outcome, tallied into the section's `enrichment` statuses.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::cut;
use crate::domain::permissions::Feature;

/// One part of the context, switchable per integration (`enrichment.parts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextPart {
    /// `GET /users/{id}` with the manager.
    Profile,
    /// Directory roles from `transitiveMemberOf`, and whether one is privileged.
    Roles,
    /// Group memberships from `transitiveMemberOf`, capped.
    Groups,
    /// `userRegistrationDetails/{id}`.
    Mfa,
    /// `auditLogs/signIns` around the alert time.
    SignIns,
    /// `mailboxSettings/automaticRepliesSetting`.
    OutOfOffice,
    /// `calendar/getSchedule` around the alert time.
    Schedule,
    /// `communications/getPresencesByUserId`, batched.
    Presence,
    /// Defender for Endpoint `machines/{id}`.
    Device,
    /// Defender for Endpoint `files/{hash}`.
    File,
}

impl ContextPart {
    pub const ALL: [ContextPart; 10] = [
        ContextPart::Profile,
        ContextPart::Roles,
        ContextPart::Groups,
        ContextPart::Mfa,
        ContextPart::SignIns,
        ContextPart::OutOfOffice,
        ContextPart::Schedule,
        ContextPart::Presence,
        ContextPart::Device,
        ContextPart::File,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ContextPart::Profile => "profile",
            ContextPart::Roles => "roles",
            ContextPart::Groups => "groups",
            ContextPart::Mfa => "mfa",
            ContextPart::SignIns => "sign_ins",
            ContextPart::OutOfOffice => "out_of_office",
            ContextPart::Schedule => "schedule",
            ContextPart::Presence => "presence",
            ContextPart::Device => "device",
            ContextPart::File => "file",
        }
    }

    /// The feature whose permissions the part's calls need.
    pub fn feature(self) -> Feature {
        match self {
            ContextPart::Profile | ContextPart::Roles | ContextPart::Groups | ContextPart::Mfa | ContextPart::SignIns => {
                Feature::UserContext
            }
            ContextPart::OutOfOffice | ContextPart::Schedule | ContextPart::Presence => Feature::Calendar,
            ContextPart::Device | ContextPart::File => Feature::DeviceContext,
        }
    }
}

impl fmt::Display for ContextPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one lookup of one subject went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    Ok,
    /// Microsoft has no such user, device or file (404).
    NotFound,
    /// Microsoft answered 429, or the tenant's budget had no slot in time: try on a later alert.
    Throttled,
    /// 401/403: the app lacks the permission (Test & Save names it) or a policy blocks it.
    Forbidden,
    /// The tenant's plan does not include the data: sign-in logs through Graph need Microsoft
    /// Entra ID P1 or P2 (resources/signin.md). No permission fixes it.
    Unlicensed,
    /// Anything else, with what happened.
    Failed(String),
    /// The alert's time for context ran out before this lookup.
    TimedOut,
}

impl LookupOutcome {
    /// Worse outcomes win the part's status.
    fn rank(&self) -> u8 {
        match self {
            LookupOutcome::Ok => 0,
            LookupOutcome::NotFound => 1,
            LookupOutcome::TimedOut => 2,
            LookupOutcome::Throttled => 3,
            LookupOutcome::Unlicensed => 4,
            LookupOutcome::Forbidden => 5,
            LookupOutcome::Failed(_) => 6,
        }
    }

    fn status(&self) -> &'static str {
        match self {
            LookupOutcome::Ok => "ok",
            LookupOutcome::NotFound => "not_found",
            LookupOutcome::Throttled => "throttled",
            LookupOutcome::Forbidden => "forbidden",
            LookupOutcome::Unlicensed => "unlicensed",
            LookupOutcome::Failed(_) => "failed",
            LookupOutcome::TimedOut => "timed_out",
        }
    }
}

/// How one part went for the alert: `ok`, `not_applicable` (the alert names nothing it covers),
/// or the worst of `not_found`, `timed_out`, `throttled`, `unlicensed`, `forbidden`, `failed` among its
/// lookups, with the counts and what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartStatus {
    pub status: String,
    /// Lookups made (or answered from the cache) and how many of them succeeded.
    pub lookups: u32,
    pub succeeded: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Collects lookups' outcomes per part.
#[derive(Debug, Default)]
pub struct Tally {
    parts: BTreeMap<ContextPart, (u32, u32, Option<LookupOutcome>)>,
}

impl Tally {
    /// Registers a part the integration asks for (listed even when nothing was looked up).
    pub fn expect(&mut self, part: ContextPart) {
        self.parts.entry(part).or_insert((0, 0, None));
    }

    pub fn record(&mut self, part: ContextPart, outcome: LookupOutcome) {
        let e = self.parts.entry(part).or_insert((0, 0, None));
        e.0 += 1;
        if outcome == LookupOutcome::Ok {
            e.1 += 1;
        }
        if e.2.as_ref().is_none_or(|w| outcome.rank() > w.rank()) {
            e.2 = Some(outcome);
        }
    }

    pub fn statuses(self) -> BTreeMap<String, PartStatus> {
        self.parts
            .into_iter()
            .map(|(part, (lookups, succeeded, worst))| {
                let (status, detail) = match worst {
                    None => ("not_applicable", None),
                    Some(LookupOutcome::Failed(why)) => ("failed", Some(why)),
                    Some(o) => (o.status(), None),
                };
                (part.name().to_owned(), PartStatus { status: status.to_owned(), lookups, succeeded, detail: cut(detail) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::processing::context::parts::*;

    #[test]
    fn a_part_reports_its_worst_lookup_and_an_unused_part_is_not_applicable() {
        let mut t = Tally::default();
        t.expect(ContextPart::Device);
        t.record(ContextPart::SignIns, LookupOutcome::Ok);
        t.record(ContextPart::SignIns, LookupOutcome::Throttled);
        t.record(ContextPart::SignIns, LookupOutcome::NotFound);
        t.record(ContextPart::Mfa, LookupOutcome::Failed("Graph answered 500".into()));
        let s = t.statuses();
        assert_eq!(s["device"].status, "not_applicable");
        assert_eq!((s["sign_ins"].status.as_str(), s["sign_ins"].lookups, s["sign_ins"].succeeded), ("throttled", 3, 1));
        assert_eq!((s["mfa"].status.as_str(), s["mfa"].detail.as_deref()), ("failed", Some("Graph answered 500")));
    }
}
