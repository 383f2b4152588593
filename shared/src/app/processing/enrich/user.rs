//! One user's context parts, looked up in the order they depend on each other.

use std::time::Instant;

use super::Enricher;
use crate::domain::integration::Integration;
use crate::domain::processing::context::{
    auto_replies_of, memberships_of, mfa_of, presence_of, profile_of, schedule_of, sign_ins_of, ContextPart, LookupOutcome, UserContext,
    UserSubject, SCHEDULE_INTERVAL_MINUTES,
};
use crate::domain::time::GraphTime;
use crate::ports::{ContextAnswer, ContextRequest};

/// Memberships read per user: pages of this many, at most [`MEMBERSHIP_PAGES`] of them.
const MEMBERSHIP_TOP: u32 = 999;
const MEMBERSHIP_PAGES: u32 = 3;

/// `from` rounded down and `to` rounded up to a quarter hour.
fn quarter_hours(from: GraphTime, to: GraphTime) -> (GraphTime, GraphTime) {
    const Q: i64 = 900;
    let down = |s: i64| s.div_euclid(Q) * Q;
    (GraphTime::from_unix_seconds(down(from.unix_seconds())), GraphTime::from_unix_seconds(down(to.unix_seconds() + Q - 1)))
}

impl Enricher {
    /// One user's parts, in the order they depend on each other (the profile gives the object id
    /// and address the others need).
    pub(super) async fn user(
        &self,
        i: &Integration,
        subject: &UserSubject,
        parts: &[ContextPart],
        at: GraphTime,
        deadline: Instant,
    ) -> (UserContext, Vec<(ContextPart, LookupOutcome)>) {
        let mut u = UserContext { id: subject.id.clone(), upn: subject.upn.clone(), ..UserContext::default() };
        let mut out = Vec::new();
        let wants = |p: ContextPart| parts.contains(&p);
        let key = subject.key().to_owned();
        // How the profile went, when it was asked for: the parts that need what it gives fail
        // as it did.
        let mut profile_outcome = None;
        if wants(ContextPart::Profile) {
            let outcome = match self.get(i, ContextRequest::User { user: key.clone() }, deadline).await {
                Ok(ContextAnswer::One(v)) => {
                    let (profile, id, upn) = profile_of(&v);
                    u.profile = Some(profile);
                    u.id = u.id.take().or(id);
                    u.upn = u.upn.take().or(upn);
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            out.push((ContextPart::Profile, outcome.clone()));
            profile_outcome = Some(outcome);
        }
        let unknown = |what: &str| match &profile_outcome {
            Some(o) if *o != LookupOutcome::Ok => o.clone(),
            _ => LookupOutcome::Failed(format!("{what}, which the alert does not give; enable the profile part")),
        };
        let needs_id = |what: &str| unknown(&format!("{what} needs the user's object id"));
        let needs_address = || unknown("the schedule needs the user's address");
        if wants(ContextPart::Roles) || wants(ContextPart::Groups) {
            let request = ContextRequest::Memberships { user: key.clone(), top: MEMBERSHIP_TOP, pages: MEMBERSHIP_PAGES };
            let outcome = match self.get(i, request, deadline).await {
                Ok(ContextAnswer::Many { items, more }) => {
                    let m = memberships_of(&items, i.enrichment.max_groups as usize, more);
                    if wants(ContextPart::Roles) {
                        u.is_admin = Some(m.roles.iter().any(|r| r.privileged));
                        u.roles = Some(m.roles);
                    }
                    if wants(ContextPart::Groups) {
                        u.groups = Some(m.groups);
                        u.groups_truncated = Some(m.groups_truncated);
                    }
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            for p in [ContextPart::Roles, ContextPart::Groups].into_iter().filter(|p| wants(*p)) {
                out.push((p, outcome.clone()));
            }
        }
        let window = i.enrichment.window.0;
        // The registration details before the sign-ins: both share the tenant's 5 identity-report
        // requests per 10 s, and a user's registration is one request for all of their alerts
        // (cached), where sign-ins are one per alert's window. Sign-ins first let a burst of
        // alerts spend every slot on them and left no user's MFA known (the demo: 0 of 446).
        if wants(ContextPart::Mfa) {
            let outcome = match u.id.clone() {
                None => needs_id("mfa"),
                Some(id) => match self.get(i, ContextRequest::Registration { user_id: id }, deadline).await {
                    Ok(ContextAnswer::One(v)) => {
                        u.mfa = Some(mfa_of(&v));
                        LookupOutcome::Ok
                    }
                    Ok(_) => LookupOutcome::NotFound,
                    Err(o) => o,
                },
            };
            out.push((ContextPart::Mfa, outcome));
        }
        if wants(ContextPart::SignIns) {
            let (user, by_id) = match (&u.id, &u.upn) {
                (Some(id), _) => (id.clone(), true),
                (None, Some(upn)) => (upn.clone(), false),
                (None, None) => (key.clone(), false),
            };
            // The window rounded out to quarter hours: alerts about the user close in time share one answer.
            let (from, to) = quarter_hours(at.minus(window), at.plus(window));
            let request = ContextRequest::SignIns { user, by_id, from, to, top: i.enrichment.max_sign_ins };
            let outcome = match self.get(i, request, deadline).await {
                Ok(ContextAnswer::Many { items, .. }) => {
                    u.sign_ins = Some(sign_ins_of(&items, i.enrichment.max_sign_ins as usize));
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            out.push((ContextPart::SignIns, outcome));
        }
        if wants(ContextPart::OutOfOffice) {
            let outcome = match self.get(i, ContextRequest::AutoReplies { user: key.clone() }, deadline).await {
                Ok(ContextAnswer::One(v)) => {
                    u.out_of_office = Some(auto_replies_of(&v, at));
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            out.push((ContextPart::OutOfOffice, outcome));
        }
        if wants(ContextPart::Schedule) {
            let outcome = match u.upn.clone() {
                None => needs_address(),
                Some(address) => {
                    let from = at.minus(window);
                    let request = ContextRequest::Schedule {
                        user: key.clone(),
                        address,
                        from,
                        to: at.plus(window),
                        interval_minutes: SCHEDULE_INTERVAL_MINUTES,
                    };
                    match self.get(i, request, deadline).await {
                        Ok(ContextAnswer::One(v)) if v.get("error").is_some_and(|e| !e.is_null()) => {
                            LookupOutcome::Failed(format!("getSchedule: {}", v["error"]["message"].as_str().unwrap_or("an error")))
                        }
                        Ok(ContextAnswer::One(v)) => {
                            u.schedule = Some(schedule_of(&v, from, at));
                            LookupOutcome::Ok
                        }
                        Ok(_) => LookupOutcome::NotFound,
                        Err(o) => o,
                    }
                }
            };
            out.push((ContextPart::Schedule, outcome));
        }
        if wants(ContextPart::Presence) {
            let outcome = match u.id.clone() {
                None => needs_id("presence"),
                Some(id) => match self.presence(i, id, deadline).await {
                    Ok(Some(v)) => {
                        u.presence = Some(presence_of(&v));
                        LookupOutcome::Ok
                    }
                    Ok(None) => LookupOutcome::NotFound,
                    Err(o) => o,
                },
            };
            out.push((ContextPart::Presence, outcome));
        }
        (u, out)
    }
}

#[cfg(test)]
mod tests {
    use super::quarter_hours;
    use crate::domain::time::GraphTime;

    #[test]
    fn sign_in_windows_round_out_to_quarter_hours() {
        let (f, t) = quarter_hours(GraphTime::from_unix_seconds(1_000), GraphTime::from_unix_seconds(2_000));
        assert_eq!((f.unix_seconds(), t.unix_seconds()), (900, 2_700));
    }
}
