//! Email threat submissions end to end against the simulator: first sight delivered at once,
//! verdict or not; unsettled submissions re-read by id, in turn, and delivered again once
//! Microsoft's analysis ends; the list read without `$orderby` or `$skip` (nextLink only);
//! submissions that never settle forgotten after the settle time, counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use m365_ingest::app::polling::poll::Outcome;
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::Scenario;

const LIST: &str = "/beta/security/threatSubmission/emailThreats";

fn scenario(count: usize, analysis: (i64, i64)) -> Scenario {
    let mut s = fixed(Scenario::default());
    s.tenants[0].alerts.count = 5;
    let p = &mut s.tenants[0].submissions;
    p.count = count;
    p.queued_min_secs = 30;
    p.queued_max_secs = 600;
    (p.analysis_min_secs, p.analysis_max_secs) = analysis;
    s
}

fn envelopes(w: &World) -> Vec<Envelope> {
    w.queue.messages().iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()).collect()
}

fn status(e: &Envelope) -> String {
    let v: serde_json::Value = serde_json::from_str(e.object.as_ref().unwrap().get()).unwrap();
    v["status"].as_str().unwrap_or_default().to_owned()
}

fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "skipped")
}

/// (id → analysis end) of the submissions a window at `now` must deliver.
fn due(w: &World, now: GraphTime) -> BTreeMap<String, GraphTime> {
    let win = window();
    w.sim
        .submission_timeline(TENANT)
        .into_iter()
        .map(|(id, c, v, d)| (id, GraphTime::from_ticks(c.0), GraphTime::from_ticks(v.0), GraphTime::from_ticks(d.0)))
        .filter(|(_, c, v, _)| *c >= now.minus(win.lookback) && *c < now.minus(win.ingestion_delay) && *v <= now)
        .map(|(id, _, _, d)| (id, d))
        .collect()
}

/// Submissions read by id (answered: a 401 for an expired token or a throttled request is asked again).
fn item_calls(w: &World) -> Vec<tenant_sim::record::RecordedRequest> {
    w.sim.requests().matching(&format!("{LIST}/")).into_iter().filter(|c| c.status == 200).collect()
}

fn item_reads(w: &World) -> usize {
    item_calls(w).len()
}

#[tokio::test]
async fn a_submission_is_delivered_at_first_sight_and_again_with_its_verdict() {
    let settings = PollSettings { settle_per_run: 1000, ..PollSettings::default() };
    let w = world(scenario(260, (1800, 7200)), settings, secret_creds()).await;
    let s = w.poll(Source::EmailSubmissions).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let now = w.now();
    let want = due(&w, now);
    let first = envelopes(&w);
    let ids: BTreeSet<String> = first.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), first.len(), "each once");
    assert_eq!(ids, want.keys().cloned().collect::<BTreeSet<_>>(), "every due submission, nothing else");
    assert!(first.iter().all(|e| e.source == Source::EmailSubmissions));
    let pending: BTreeSet<String> = first.iter().filter(|e| !is_final(&status(e))).map(|e| e.id.clone()).collect();
    let expected_pending: BTreeSet<String> = want.iter().filter(|(_, done)| **done > now).map(|(id, _)| id.clone()).collect();
    assert_eq!(pending, expected_pending, "those still under analysis went out without a verdict");
    assert!(pending.len() >= 3, "the scenario has submissions under analysis: {}", pending.len());

    // The list is read as documented: no $orderby, no $skip; counted; a span in one response
    // (a count proves only the response it came with), so no link is followed here.
    let calls = w.sim.requests().matching(LIST);
    assert!(calls.len() >= want.len().div_ceil(100), "{} calls", calls.len());
    for c in &calls {
        assert!(c.status == 200 || c.fault.as_deref() == Some("throttle"), "{c:?}");
        assert!(c.query_value("$orderby").is_none() && c.query_value("$skip").is_none(), "{c:?}");
    }
    assert!(calls.iter().all(|c| c.query_value("$skiptoken").is_none() && c.query_value("$skipToken").is_none()), "one response a span");
    assert_eq!(item_reads(&w), 0, "nothing is re-read in the run that first saw it");

    // Hours later every analysis has ended: each pending one is delivered once more, final.
    w.sim.clock().advance_secs(9 * 3600);
    let before = first.len();
    let s = w.poll(Source::EmailSubmissions).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    assert_eq!(s.verdicts, pending.len(), "{s:?}");
    assert_eq!(item_reads(&w), pending.len(), "one read by id each");
    let later = envelopes(&w);
    let again: Vec<&Envelope> = later[before..].iter().filter(|e| pending.contains(&e.id)).collect();
    assert_eq!(again.len(), pending.len(), "each pending submission once more");
    assert!(again.iter().all(|e| is_final(&status(e))), "with its final status");
    assert!(again.iter().all(|e| !e.object.as_ref().unwrap().get().contains("@odata.context")), "read by id, it looks as listed");
    // The rest of the second run: submissions that came due since, each once.
    let newly: Vec<&Envelope> = later[before..].iter().filter(|e| !pending.contains(&e.id)).collect();
    let want2 = due(&w, w.now());
    let expected_new: BTreeSet<String> = want2.keys().filter(|id| !ids.contains(*id)).cloned().collect();
    assert_eq!(newly.iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>(), expected_new);
    assert_eq!(newly.len(), expected_new.len());

    // Settled means forgotten: a third run re-reads nothing and delivers nothing.
    w.sim.clock().advance_secs(600);
    let reads = item_reads(&w);
    let count = w.queue.messages().len();
    let s = w.poll(Source::EmailSubmissions).await;
    assert_eq!((s.outcome.clone(), s.verdicts), (Outcome::Completed, 0), "{s:?}");
    assert_eq!((item_reads(&w), w.queue.messages().len()), (reads, count));
}

#[tokio::test]
async fn unsettled_submissions_are_read_in_turn_and_forgotten_after_the_settle_time() {
    // Analyses that outlast the test: nothing settles.
    let settings = PollSettings { settle_per_run: 3, settle_within: Duration::from_secs(36 * 3600), ..PollSettings::default() };
    let mut s = scenario(200, (30 * 86_400, 30 * 86_400));
    s.tenants[0].alerts.to = "0s".into();
    let w = world(s, settings, secret_creds()).await;
    // Every submission of this scenario was created before its start: ten minutes on, all are
    // due, so the rounds below see no new ones.
    w.sim.clock().advance_secs(600);
    let s = w.poll(Source::EmailSubmissions).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let pending: BTreeSet<String> = envelopes(&w).iter().filter(|e| !is_final(&status(e))).map(|e| e.id.clone()).collect();
    assert!(pending.len() > 6, "{}", pending.len());
    // Each run re-reads the next three, so that every one is re-read in turn.
    let mut read: Vec<String> = Vec::new();
    let rounds = pending.len().div_ceil(3);
    for _ in 0..rounds {
        w.sim.clock().advance_secs(60);
        let before = item_reads(&w);
        let s = w.poll(Source::EmailSubmissions).await;
        assert_eq!((s.outcome.clone(), s.verdicts), (Outcome::Completed, 0), "{s:?}");
        let calls = item_calls(&w);
        assert!(calls.len() - before <= 3);
        read.extend(calls[before..].iter().map(|c| c.path.rsplit('/').next().unwrap().to_owned()));
    }
    // The first `pending` reads reach each once; the last round wraps around to the first.
    let reached: BTreeSet<String> = read[..pending.len()].iter().cloned().collect();
    assert_eq!(reached, pending, "every unsettled one, each once, in turn");
    assert_eq!(read[pending.len()..], read[..read.len() - pending.len()]);

    // Two days on, all were created more than the settle time ago: no longer followed, counted.
    w.sim.clock().advance_secs(2 * 86_400);
    let s = w.poll(Source::EmailSubmissions).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    assert!(s.unsettled_dropped >= pending.len(), "{s:?}");
}

/// With excluded result categories a submission waits, undelivered, for its verdict: nothing
/// goes downstream before Microsoft's verdict, so an excluded one reaches nobody (the processor
/// drops the final revision, and no evidence job starts); one whose verdict does not come
/// within `verdict_wait` goes as `pending` (the processor notes why) and is still followed.
/// Before: every submission went out at first sight, before its verdict.
#[tokio::test]
async fn with_excluded_categories_a_submission_waits_for_its_verdict() {
    use m365_ingest::domain::duration_text::DurationText;
    for wait_secs in [3 * 3600, 600] {
        let settings = PollSettings { settle_per_run: 1000, ..PollSettings::default() };
        let w = world(scenario(260, (1800, 7200)), settings, secret_creds()).await;
        let mut i = integration_for(Source::EmailSubmissions);
        i.email_submissions.excluded_result_categories = vec!["allowedByPolicy".into()];
        i.email_submissions.verdict_wait = DurationText(Duration::from_secs(wait_secs));
        let deadline = || std::time::Instant::now() + Duration::from_secs(600);
        let s = w.poller.poll_one(&i, Source::EmailSubmissions, deadline()).await;
        assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
        let now = w.now();
        let want = due(&w, now);
        let under_analysis: BTreeSet<String> = want.iter().filter(|(_, done)| **done > now).map(|(id, _)| id.clone()).collect();
        assert!(under_analysis.len() >= 3, "{}", under_analysis.len());
        let first = envelopes(&w);
        assert!(first.iter().all(|e| is_final(&status(e))), "nothing goes before its verdict");
        assert_eq!(first.len(), want.len() - under_analysis.len());
        assert_eq!(s.held_for_verdict, under_analysis.len(), "{s:?}");
        let ids: Vec<String> = first.iter().map(|e| e.id.clone()).collect();
        // The next run: with a short wait, those still under analysis go as pending.
        w.sim.clock().advance_secs(15 * 60);
        let s = w.poller.poll_one(&i, Source::EmailSubmissions, deadline()).await;
        let second: Vec<Envelope> = envelopes(&w).into_iter().skip(first.len()).filter(|e| under_analysis.contains(&e.id)).collect();
        let pending: BTreeSet<String> = second.iter().filter(|e| !is_final(&status(e))).map(|e| e.id.clone()).collect();
        if wait_secs == 600 {
            assert!(!pending.is_empty() && s.verdicts_waited_out == pending.len(), "{s:?}");
        } else {
            assert!(pending.is_empty() && s.verdicts_waited_out == 0, "a 3-hour wait still holds them: {s:?}");
        }
        // Every analysis over: each submission under analysis goes once with its verdict.
        w.sim.clock().advance_secs(9 * 3600);
        let s = w.poller.poll_one(&i, Source::EmailSubmissions, deadline()).await;
        assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
        let all = envelopes(&w);
        for id in &under_analysis {
            let finals = all.iter().filter(|e| &e.id == id && is_final(&status(e))).count();
            let pendings = all.iter().filter(|e| &e.id == id && !is_final(&status(e))).count();
            assert_eq!(finals, 1, "{id}: its verdict, once");
            assert_eq!(pendings, usize::from(pending.contains(id)), "{id}: pending only when its wait ran out");
        }
        assert!(ids.iter().all(|id| all.iter().filter(|e| &e.id == id).count() == 1), "settled ones went once");
    }
}
