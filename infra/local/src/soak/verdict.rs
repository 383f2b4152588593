//! The comparison: what the simulator held against what reached the output queue.
//!
//! A version is owed once a completed poll run covered it: it was the alert's current version
//! for the whole invocation (visible when it started, not yet replaced when it ended) and its
//! `lastUpdateDateTime` lies before the run's watermark. An alert is lost when no published
//! version is as new as the newest version owed for it. Graph shows only an alert's current
//! version, so a version replaced before any run could see it is owed by no one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use m365_ingest::GraphTime;
use serde::Serialize;
use serde_json::Value;

use super::drive::CompletedRun;

/// Clock reads on two sides of a process boundary: a second of slack either way.
const SLACK: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// Alerts with a version owed.
    pub alerts: usize,
    /// Distinct (alert, version) pairs published.
    pub versions_published: usize,
    /// Versions the simulator held (every update of every alert, owed or not).
    pub versions_in_simulator: usize,
    pub lost: usize,
    /// (tenant, id, version) published more than once, and the extra copies.
    pub duplicated_versions: usize,
    pub extra_copies: u64,
    /// Of those, versions that were in a batch whose processor was killed: SQS acknowledged the
    /// send and the kill came before the mark, so the redelivery published again. No standard
    /// queue can tell a re-send from a send; each copy carries the same `dedup_key`.
    pub duplicates_after_a_processor_kill: usize,
    /// Published again after an AWS error the processor could not tell from a failure (a send
    /// SQS took before failing it, a mark whose write failed after the publish).
    pub duplicates_after_an_aws_error: usize,
    /// Duplicates nothing explains: a defect.
    pub unexplained_duplicates: usize,
    /// Published versions the simulator never had.
    pub phantoms: usize,
    /// Up to ten examples of each problem.
    pub lost_examples: Vec<String>,
    pub duplicate_examples: Vec<String>,
    pub phantom_examples: Vec<String>,
}

struct Version {
    at: GraphTime,
    visible: GraphTime,
}

/// The alert's current version at `t`: the newest one visible (as the simulator serves it).
fn current(versions: &[Version], t: GraphTime) -> Option<usize> {
    versions.iter().enumerate().filter(|(_, v)| v.visible <= t).max_by_key(|(_, v)| v.at).map(|(i, _)| i)
}

pub fn judge(
    record: &Value,
    tenant_of: &BTreeMap<String, String>,
    runs: &[CompletedRun],
    published: &HashMap<(String, String, GraphTime), u32>,
    in_killed_batches: &HashSet<(String, String, GraphTime)>,
    after_aws_errors: &HashSet<(String, String, GraphTime)>,
) -> Result<Verdict, String> {
    let held = record["alert_versions"].as_object().ok_or("the simulator's record has no alert_versions")?;
    let mut v = Verdict::default();
    let mut newest_published: HashMap<(&str, &str), GraphTime> = HashMap::new();
    for ((tenant, id, version), n) in published {
        let e = newest_published.entry((tenant.as_str(), id.as_str())).or_default();
        *e = (*e).max(*version);
        if *n > 1 {
            v.duplicated_versions += 1;
            v.extra_copies += u64::from(*n - 1);
            let key = (tenant.clone(), id.clone(), *version);
            let why = if in_killed_batches.contains(&key) {
                v.duplicates_after_a_processor_kill += 1;
                "after a processor kill"
            } else if after_aws_errors.contains(&key) {
                v.duplicates_after_an_aws_error += 1;
                "after an AWS error"
            } else {
                v.unexplained_duplicates += 1;
                "UNEXPLAINED"
            };
            if v.duplicate_examples.len() < 10 {
                v.duplicate_examples.push(format!("{tenant}/{id}@{version} ×{n} ({why})"));
            }
        }
    }
    v.versions_published = published.len();
    let mut known: HashMap<(&str, &str), Vec<GraphTime>> = HashMap::new();
    for (integration, tenant) in tenant_of {
        let list = held.get(tenant).and_then(Value::as_array).ok_or_else(|| format!("the record has no tenant {tenant}"))?;
        let mut alerts: BTreeMap<&str, Vec<Version>> = BTreeMap::new();
        for row in list {
            let (Some(id), Some(at), Some(visible)) = (row[0].as_str(), row[1].as_str(), row[2].as_str()) else {
                return Err(format!("unexpected row in the simulator's record: {row}"));
            };
            let parse = |s: &str| GraphTime::parse(s).map_err(|e| format!("record time {s}: {e}"));
            alerts.entry(id).or_default().push(Version { at: parse(at)?, visible: parse(visible)? });
            v.versions_in_simulator += 1;
        }
        let tenant_runs: Vec<&CompletedRun> = runs.iter().filter(|r| &r.integration == integration).collect();
        for (id, versions) in &alerts {
            known.insert((tenant.as_str(), id), versions.iter().map(|x| x.at).collect());
            let mut owed: Option<GraphTime> = None;
            for r in &tenant_runs {
                let (Some(a), Some(b)) = (current(versions, r.started.minus(SLACK)), current(versions, r.ended.plus(SLACK))) else {
                    continue;
                };
                if a == b && versions[a].at < r.watermark {
                    owed = owed.max(Some(versions[a].at));
                }
            }
            let Some(owed) = owed else { continue };
            v.alerts += 1;
            if newest_published.get(&(tenant.as_str(), id)).is_none_or(|p| *p < owed) {
                v.lost += 1;
                if v.lost_examples.len() < 10 {
                    v.lost_examples.push(format!("{tenant}/{id}@{owed}"));
                }
            }
        }
    }
    for (tenant, id, version) in published.keys() {
        let real = known.get(&(tenant.as_str(), id.as_str())).is_some_and(|vs| vs.contains(version));
        if !real {
            v.phantoms += 1;
            if v.phantom_examples.len() < 10 {
                v.phantom_examples.push(format!("{tenant}/{id}@{version}"));
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn t(s: i64) -> GraphTime {
        GraphTime::from_unix_seconds(1_800_000_000 + s)
    }

    fn run(started: i64, ended: i64, watermark: i64) -> CompletedRun {
        CompletedRun { integration: "i".into(), started: t(started), ended: t(ended), watermark: t(watermark) }
    }

    fn record(rows: &[(&str, i64, i64)]) -> Value {
        let rows: Vec<Value> = rows.iter().map(|(id, at, vis)| serde_json::json!([id, t(*at).to_string(), t(*vis).to_string()])).collect();
        serde_json::json!({"alert_versions": {"T": rows}})
    }

    fn published(rows: &[(&str, i64, u32)]) -> HashMap<(String, String, GraphTime), u32> {
        rows.iter().map(|(id, at, n)| (("T".to_owned(), (*id).to_owned(), t(*at)), *n)).collect()
    }

    fn tenants() -> BTreeMap<String, String> {
        [("i".to_owned(), "T".to_owned())].into()
    }

    #[test]
    fn an_owed_version_missing_from_the_output_is_lost_and_a_copy_is_a_duplicate() {
        // a: two versions, both seen by runs; b: visible only after the last run; c: newer than the watermark.
        let rec = record(&[("a", 0, 10), ("a", 100, 110), ("b", 50, 500), ("c", 300, 301)]);
        let runs = [run(200, 205, 250), run(400, 402, 350)];
        let v = judge(&rec, &tenants(), &runs, &published(&[("a", 0, 2)]), &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!((v.duplicates_after_a_processor_kill, v.unexplained_duplicates), (0, 1));
        assert_eq!((v.alerts, v.lost, v.duplicated_versions, v.extra_copies, v.phantoms), (2, 2, 1, 1, 0), "{v:?}");
        let v = judge(&rec, &tenants(), &runs, &published(&[("a", 100, 1), ("c", 300, 1), ("x", 1, 1)]), &HashSet::new(), &HashSet::new())
            .unwrap();
        assert_eq!((v.lost, v.phantoms), (0, 1), "{v:?}");
    }

    #[test]
    fn a_version_replaced_during_a_run_is_not_owed_by_that_run() {
        let rec = record(&[("a", 0, 10), ("a", 100, 203)]);
        let v = judge(&rec, &tenants(), &[run(200, 205, 250)], &published(&[]), &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!((v.alerts, v.lost), (0, 0), "{v:?}");
    }
}
