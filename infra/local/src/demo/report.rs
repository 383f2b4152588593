//! What the demo prints besides its run's own lines: a progress bar for a long step, each poll
//! run's summary, and, read back from the output, one published incident and one alert's
//! context.

use std::time::Duration;

use m365_ingest::app::polling::poll::RunSummary;

/// A bar (or, with no length, a spinner) on a terminal for a step that takes a while; nothing
/// otherwise, where the step's summary line follows it.
pub(super) fn progress(len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let (bar, template) = if len > 0 {
            (indicatif::ProgressBar::new(len), "{prefix} [{bar:40}] {pos}/{len}")
        } else {
            (indicatif::ProgressBar::new_spinner(), "{prefix} {spinner} {msg}")
        };
        bar.set_style(indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    })
}

/// One published incident: its own fields and what became of each of its alerts.
pub(super) fn show_incident(output: &std::path::Path) {
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let listed = |m: &serde_json::Value| m["unmapped"]["alerts"].as_array().map_or(0, Vec::len);
    let incident = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["class_uid"] == 2005)
        .max_by_key(|m| (m["unmapped"]["alerts"].as_array().into_iter().flatten().any(|a| a["decision"] == "dropped"), listed(m)));
    let Some(i) = incident else { return };
    let alerts = i["unmapped"]["alerts"].as_array().cloned().unwrap_or_default();
    let published = alerts.iter().filter(|a| a["decision"] == "published").count();
    let reasons: std::collections::BTreeSet<&str> = alerts.iter().filter_map(|a| a["reason"].as_str()).collect();
    let why = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.into_iter().collect::<Vec<_>>().join(", ")) };
    println!(
        "  one incident: \"{}\" ({}, {}, {}, assigned to {}), alerts: {} listed, {published} published as their own findings, {} dropped{why}",
        i["message"].as_str().unwrap_or_default(),
        i["severity"].as_str().unwrap_or("?"),
        i["status"].as_str().unwrap_or("?"),
        i["verdict"].as_str().unwrap_or("?"),
        i["assignee"]["name"].as_str().or(i["assignee_group"]["name"].as_str()).unwrap_or("?"),
        alerts.len(),
        alerts.len() - published,
    );
}

/// One alert's context as the output shows it, and how each part went across the run.
pub(super) fn show_context(output: &std::path::Path) {
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let messages: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut tally: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
    for m in &messages {
        for (part, s) in m["context"]["enrichment"].as_object().into_iter().flatten() {
            *tally.entry((part.clone(), s["status"].as_str().unwrap_or("?").to_owned())).or_default() += 1;
        }
    }
    // The alert whose users came back with the most parts.
    let parts = |m: &serde_json::Value| -> usize {
        m["context"]["users"].as_array().into_iter().flatten().map(|u| u.as_object().map_or(0, |o| o.len())).sum::<usize>()
            + m["context"]["devices"].as_array().map_or(0, Vec::len)
    };
    let enriched = messages.iter().filter(|m| m["context"]["users"].as_array().is_some_and(|u| !u.is_empty())).max_by_key(|m| parts(m));
    if let Some(m) = enriched {
        println!("  one enriched alert: \"{}\"", m["title"].as_str().unwrap_or_default());
        for u in m["context"]["users"].as_array().into_iter().flatten() {
            let p = &u["profile"];
            println!(
                "    user {} ({}, {}): admin {}, MFA registered {}, out of office {}, presence {}",
                u["upn"].as_str().unwrap_or("?"),
                p["job_title"].as_str().unwrap_or("?"),
                p["department"].as_str().unwrap_or("?"),
                u["is_admin"],
                u["mfa"]["is_mfa_registered"],
                u["out_of_office"]["active_at_alert"],
                u["presence"]["availability"],
            );
        }
        for d in m["context"]["devices"].as_array().into_iter().flatten() {
            println!(
                "    device {}: health {}, risk {}, exposure {}",
                d["dns_name"].as_str().unwrap_or("?"),
                d["health_status"],
                d["risk_score"],
                d["exposure_level"]
            );
        }
    }
    if !tally.is_empty() {
        let line: Vec<String> = tally.iter().map(|((part, status), n)| format!("{part} {status} {n}")).collect();
        println!("  context parts across the run: {}", line.join(", "));
    }
}

pub(super) fn print_summary(s: &RunSummary) {
    let outcome = serde_json::to_value(&s.outcome)
        .ok()
        .and_then(|v| v.get("outcome").and_then(|o| o.as_str().map(str::to_owned)))
        .unwrap_or_default();
    let detail = match &s.outcome {
        m365_ingest::app::polling::poll::Outcome::Partial { reason } | m365_ingest::app::polling::poll::Outcome::Skipped { reason } => {
            format!(" ({reason})")
        }
        m365_ingest::app::polling::poll::Outcome::Failed { error, .. } => format!(" ({error})"),
        m365_ingest::app::polling::poll::Outcome::Completed => String::new(),
    };
    let verdicts = if s.verdicts > 0 { format!(" ({} of them with a verdict that was pending)", s.verdicts) } else { String::new() };
    println!(
        "  {:<9} {:<18} {outcome}{detail}: {} requests, {} delivered{verdicts}, {} already delivered (overlap), {} claim checks, watermark {}",
        s.integration_id,
        s.source.as_str(),
        s.pages,
        s.delivered,
        s.suppressed,
        s.claim_checks,
        s.watermark.map(|w| w.to_string()).unwrap_or_else(|| "-".into())
    );
}
