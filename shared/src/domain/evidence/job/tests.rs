//! The job's life end to end: [`EvidenceJob::next`] and [`EvidenceJob::observe`] together,
//! through each path a file or an email can take.

use crate::domain::evidence::job::*;

fn file() -> EvidenceTarget {
    EvidenceTarget::File {
        device_id: "d".into(),
        folder: "C:\\x".into(),
        name: "a.exe".into(),
        sha1: None,
        sha256: None,
        quarantined_by_antivirus: false,
    }
}

fn t0() -> GraphTime {
    GraphTime::from_unix_seconds(1_800_000_000)
}

/// A new job past its check against Microsoft's copy of the alert.
fn confirmed(target: EvidenceTarget) -> EvidenceJob {
    let mut j = EvidenceJob::new("k".into(), target.clone(), t0());
    assert_eq!(j.next(t0(), &JobLimits::default()), Next::Verify, "nothing is asked before Microsoft's copy is read");
    j.observe(Observation::Verified(target), t0(), &JobLimits::default());
    j
}

fn stored() -> ObjectRef {
    ObjectRef { bucket: "b".into(), key: "k".into(), size: 3, sha256: "0".repeat(64), content_type: None }
}

/// A download that met a busy (throttled) API waits the busy wait before it is made again.
#[test]
fn a_busy_download_waits_before_it_is_made_again() {
    let l = JobLimits::default();
    let mut j = confirmed(file());
    j.phase = Phase::Download { action_id: "ma1".into() };
    assert_eq!(j.next(t0(), &l), Next::Download("ma1".into()));
    j.observe(Observation::Busy, t0(), &l);
    let again = t0().plus(l.busy_wait);
    assert_eq!(j.next(t0(), &l), Next::WaitUntil(again), "not at once");
    assert_eq!(j.next(again, &l), Next::Download("ma1".into()));
}

/// Microsoft's copy can say antivirus quarantined a file the alert we were given did not:
/// the job becomes a restore, and draws its own folder and key then.
#[test]
fn a_file_microsofts_copy_says_is_quarantined_becomes_a_restore_with_its_own_folder() {
    let (plain, mut quarantined) = (file(), file());
    if let EvidenceTarget::File { quarantined_by_antivirus, sha256, .. } = &mut quarantined {
        *quarantined_by_antivirus = true;
        *sha256 = Some("ab".repeat(32));
    }
    let mut j = EvidenceJob::new("k".into(), plain, t0());
    assert!(j.restore.is_none(), "not a restore at intake");
    j.observe(Observation::Verified(quarantined), t0(), &JobLimits::default());
    assert!(j.restore.as_ref().is_some_and(RestoreSecret::is_well_formed), "{:?}", j.restore);
}

#[test]
fn a_file_is_started_checked_until_it_succeeds_downloaded_and_stored() {
    let l = JobLimits::default();
    let mut j = confirmed(file());
    assert_eq!(j.next(t0(), &l), Next::Start);
    j.observe(Observation::Started { action_id: "ma1".into() }, t0(), &l);
    let check = t0().plus(l.check_every);
    assert_eq!(j.next(t0(), &l), Next::WaitUntil(check), "no check before its time");
    assert_eq!(j.next(check, &l), Next::CheckAction("ma1".into()));
    j.observe(Observation::Action(ActionStatus::InProgress), check, &l);
    let later = check.plus(l.check_every);
    assert_eq!(j.next(later, &l), Next::CheckAction("ma1".into()));
    j.observe(Observation::Action(ActionStatus::Succeeded), later, &l);
    assert_eq!(j.next(later, &l), Next::Download("ma1".into()));
    // An expired link is a passing failure: the download is made again.
    j.observe(Observation::Transient("the link expired".into()), later, &l);
    assert_eq!(j.next(later, &l), Next::Download("ma1".into()));
    j.observe(Observation::Stored(stored()), later, &l);
    assert_eq!((j.outcome(), j.next(later, &l)), (Some(EvidenceOutcome::Retrieved), Next::Finished));
}

#[test]
fn an_offline_device_ends_the_job_after_microsofts_two_hour_queue_not_the_jobs_day() {
    let l = JobLimits::default();
    assert_eq!((l.offline_window, l.max_wait), (Duration::from_secs(7200), Duration::from_secs(86_400)));
    let mut j = confirmed(file());
    j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
    let mut now = t0();
    while j.outcome().is_none() {
        now = now.plus(l.check_every);
        if j.next(now, &l) == Next::CheckAction("ma".into()) {
            // Microsoft keeps answering Pending: the job does not wait for the day.
            j.observe(Observation::Action(ActionStatus::Pending), now, &l);
        }
    }
    assert_eq!(j.outcome(), Some(EvidenceOutcome::DeviceOffline));
    assert!(now >= t0().plus(l.offline_window) && now <= t0().plus(l.offline_window).plus(l.check_every), "{now}");
    assert!(matches!(&j.phase, Phase::Done { detail: Some(d), .. } if d.contains("2h")), "{:?}", j.phase);
    // Microsoft timing the queued action out says the same, at once.
    let mut j = confirmed(file());
    j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
    j.observe(Observation::Action(ActionStatus::TimeOut), t0().plus(Duration::from_secs(7200)), &l);
    assert_eq!(j.outcome(), Some(EvidenceOutcome::DeviceOffline));
    // A device that picked the action up and ran out of time did not stay offline.
    let mut j = confirmed(file());
    j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
    j.observe(Observation::Action(ActionStatus::InProgress), t0(), &l);
    j.observe(Observation::Action(ActionStatus::TimeOut), t0().plus(Duration::from_secs(900)), &l);
    assert_eq!(j.outcome(), Some(EvidenceOutcome::TimedOut));
}

#[test]
fn a_busy_device_waits_and_an_offline_one_ends_the_job_at_its_maximum_wait() {
    let l = JobLimits { max_wait: Duration::from_secs(3600), ..JobLimits::default() };
    let mut j = confirmed(file());
    j.observe(Observation::Busy, t0(), &l);
    assert_eq!(j.next(t0(), &l), Next::WaitUntil(t0().plus(l.busy_wait)));
    let t = t0().plus(l.busy_wait);
    j.observe(Observation::Started { action_id: "ma".into() }, t, &l);
    // Queued by Microsoft for a device that never comes online.
    let mut now = t;
    while j.outcome().is_none() {
        now = now.plus(l.check_every);
        if j.next(now, &l) == Next::CheckAction("ma".into()) {
            j.observe(Observation::Action(ActionStatus::Pending), now, &l);
        }
    }
    assert_eq!(j.outcome(), Some(EvidenceOutcome::DeviceOffline));
    assert!(now >= t0().plus(l.max_wait) && now <= t0().plus(l.max_wait).plus(l.check_every));
    // One that started on the device and never finished timed out.
    let mut j = confirmed(file());
    j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
    j.observe(Observation::Action(ActionStatus::InProgress), t0(), &l);
    assert_eq!(j.next(t0().plus(l.max_wait), &l), Next::Finished);
    assert_eq!(j.outcome(), Some(EvidenceOutcome::TimedOut));
}

#[test]
fn attempts_are_bounded_and_every_end_is_named() {
    let l = JobLimits { max_attempts: 3, ..JobLimits::default() };
    let mut j = confirmed(file());
    for _ in 0..4 {
        j.observe(Observation::Transient("503".into()), t0(), &l);
    }
    assert_eq!(j.outcome(), Some(EvidenceOutcome::TimedOut));
    assert!(matches!(&j.phase, Phase::Done { detail: Some(d), .. } if d.contains("4 attempts") && d.contains("503")));
    for (obs, want) in [
        (Observation::ActionFailed { hresult: Some(-2_147_024_894), errors: vec![] }, EvidenceOutcome::NotFound),
        (Observation::ActionFailed { hresult: Some(-2_147_024_673), errors: vec![] }, EvidenceOutcome::TooLarge),
        (Observation::ActionFailed { hresult: Some(0x8007_05B4_u32 as i32 as i64), errors: vec![] }, EvidenceOutcome::TimedOut),
        (Observation::ActionFailed { hresult: Some(-2_146_762_496), errors: vec![] }, EvidenceOutcome::Refused),
        (Observation::ActionFailed { hresult: Some(-2_147_024_891), errors: vec!["Access is denied".into()] }, EvidenceOutcome::Refused),
        (Observation::Action(ActionStatus::Failed), EvidenceOutcome::Refused),
        (Observation::Action(ActionStatus::Cancelled), EvidenceOutcome::TimedOut),
        (Observation::Refused("no Machine.LiveResponse".into()), EvidenceOutcome::Refused),
        (Observation::TooLarge { size: 9, limit: 8 }, EvidenceOutcome::TooLarge),
        (Observation::HashMismatch { expected: "a".into(), got: "b".into() }, EvidenceOutcome::Refused),
    ] {
        let mut j = confirmed(file());
        j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
        j.observe(obs.clone(), t0(), &l);
        assert_eq!(j.outcome(), Some(want), "{obs:?}");
    }
    let off = EvidenceJob::disabled("k".into(), file(), t0());
    assert_eq!(off.outcome(), Some(EvidenceOutcome::Disabled));
}

#[test]
fn an_email_is_found_by_id_then_exported_and_a_missing_one_is_not_found() {
    let l = JobLimits::default();
    let email =
        EvidenceTarget::Email { internet_message_id: "<q@x>".into(), recipient: "u@contoso.com".into(), location: Default::default() };
    let mut j = confirmed(email.clone());
    assert_eq!(j.next(t0(), &l), Next::Start);
    j.observe(Observation::Found { identity: "g1\\g2".into() }, t0(), &l);
    assert_eq!(j.next(t0(), &l), Next::Export("g1\\g2".into()));
    j.observe(Observation::Stored(stored()), t0(), &l);
    assert_eq!(j.outcome(), Some(EvidenceOutcome::Retrieved));
    let mut j = confirmed(email);
    j.observe(Observation::NotFound("no quarantined message with that id for that recipient".into()), t0(), &l);
    assert_eq!(j.outcome(), Some(EvidenceOutcome::NotFound));
    // The record round-trips: it is what DynamoDB keeps between steps.
    let text = serde_json::to_string(&j).unwrap_or_default();
    assert_eq!(serde_json::from_str::<EvidenceJob>(&text).ok(), Some(j));
}
