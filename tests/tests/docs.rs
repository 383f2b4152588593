//! The docs against the code: every environment variable, integration setting and metric a
//! page names exists, and every one the code reads or emits is named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use m365_ingest::config::{CheckConfig, DispatchConfig, PollerConfig, ProcessorConfig, QueryConfig, RemediateConfig};
use m365_ingest::domain::integration::doc::{self as integration_doc, IntegrationDoc};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// README.md and every page under docs/, with their paths.
fn pages() -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.retain(|p| p.extension().is_some_and(|x| x == "md"));
    paths.sort();
    paths.insert(0, root().join("README.md"));
    paths.into_iter().map(|p| (p.strip_prefix(root()).unwrap().display().to_string(), std::fs::read_to_string(&p).unwrap())).collect()
}

fn page(name: &str) -> String {
    std::fs::read_to_string(root().join(name)).unwrap()
}

/// The text between backticks, each span once per occurrence.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Rust sources under `dir`, without their `#[cfg(test)]` modules.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                walk(&e, out);
            } else if e.extension().is_some_and(|x| x == "rs") {
                out.push(e);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join(dir), &mut files);
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            (f, code)
        })
        .collect()
}

fn is_variable_name(s: &str) -> bool {
    s.len() > 3
        && s.contains('_')
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && s.starts_with(|c: char| c.is_ascii_uppercase())
}

/// Every variable the functions read, by their configurations.
fn functions_variables() -> BTreeSet<&'static str> {
    [
        CheckConfig::VARIABLES,
        CheckConfig::NOT_IN_TEMPLATE,
        DispatchConfig::VARIABLES,
        DispatchConfig::NOT_IN_TEMPLATE,
        PollerConfig::VARIABLES,
        PollerConfig::NOT_IN_TEMPLATE,
        ProcessorConfig::VARIABLES,
        ProcessorConfig::NOT_IN_TEMPLATE,
        QueryConfig::VARIABLES,
        QueryConfig::NOT_IN_TEMPLATE,
        RemediateConfig::VARIABLES,
        RemediateConfig::NOT_IN_TEMPLATE,
    ]
    .into_iter()
    .flatten()
    .copied()
    .collect()
}

/// Every variable some code of the workspace (the simulator's tests too) reads by name (`var("…")`, `var_os("…")`, a log
/// filter's `try_from_env("…")`).
fn variables_read_anywhere() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = functions_variables().into_iter().map(str::to_owned).collect();
    for dir in ["shared/src", "functions", "infra/local/src", "infra/tenant-sim/src", "infra/tenant-sim/tests"] {
        for (_, code) in sources(dir) {
            for call in ["var(\"", "var_os(\"", "try_from_env(\""] {
                for piece in code.split(call).skip(1) {
                    let name = piece.split('"').next().unwrap_or_default();
                    if is_variable_name(name) {
                        out.insert(name.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// Names in capitals the docs use that are not variables the code reads, each with its reason.
const NOT_VARIABLES: &[(&str, &str)] = &[
    ("CLIENT_SECRET", "the operator's own variable, named on the command line with --client-secret-env"),
    ("RLIMIT_DATA", "a Linux resource limit the memory check sets"),
    ("CHECK_FUNCTION", "a placeholder in a shell example: the stack output CheckFunctionName"),
    ("INTAKE_DLQ_URL", "a placeholder in a shell example: the stack's intake dead-letter queue"),
    ("POLL_JOBS_DLQ_URL", "a placeholder in a shell example: the stack's poll-jobs dead-letter queue"),
    ("DLQ_URL", "a placeholder in a usage line"),
    ("QUEUE_URL", "a placeholder in a usage line"),
];

#[test]
fn every_variable_a_page_names_is_read_by_the_code_and_every_one_the_functions_read_is_documented() {
    let read = variables_read_anywhere();
    let mut unknown = Vec::new();
    for (path, text) in pages() {
        let named = code_spans(&text).into_iter().flat_map(|s| s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')));
        for name in named.filter(|n| is_variable_name(n)) {
            if !read.contains(name) && !NOT_VARIABLES.iter().any(|(n, _)| *n == name) {
                unknown.push(format!("{path}: {name}"));
            }
        }
    }
    assert!(unknown.is_empty(), "variables the docs name that no code reads (a typo, or a variable since removed): {unknown:?}");
    let config = page("docs/configuration.md");
    let undocumented: Vec<&str> = functions_variables().into_iter().filter(|v| !config.contains(&format!("`{v}`"))).collect();
    assert!(undocumented.is_empty(), "variables the functions read that docs/configuration.md does not name: {undocumented:?}");
}

/// Every setting of the integration document as a dotted path (`polling.lookback`): the
/// example with its commented-out fields too, and the defaults of a new document.
fn settings() -> BTreeSet<String> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    out.insert(path.clone());
                    flatten(&path, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }
    let example = page("infra/examples/integration.toml");
    // `# key = value` and `# [table]` lines are fields the example leaves out: put them back.
    let every_field: String = example
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let doc = integration_doc::from_toml(&every_field).unwrap_or_else(|e| panic!("the example with every field: {e}"));
    flatten("", &serde_json::to_value(&doc).unwrap(), &mut out);
    flatten("", &serde_json::to_value(IntegrationDoc::new("x", "t", "c", "s")).unwrap(), &mut out);
    out
}

#[test]
fn every_setting_a_page_names_exists_and_every_setting_is_documented() {
    let settings = settings();
    assert!(
        settings.len() > 50 && settings.contains("evidence.hold_max_wait") && settings.contains("sources.phishing_mailbox.filter"),
        "{settings:?}"
    );
    let tables: BTreeSet<&str> = settings.iter().filter(|s| s.contains('.')).filter_map(|s| s.split('.').next()).collect();
    let mut unknown = Vec::new();
    for (path, text) in pages() {
        for span in code_spans(&text) {
            let token = span.split([' ', '[', '=', ',']).next().unwrap_or_default().trim_end_matches('.');
            let Some((table, _)) = token.split_once('.') else { continue };
            if tables.contains(table) && token.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.') && !settings.contains(token)
            {
                unknown.push(format!("{path}: {token}"));
            }
        }
    }
    assert!(unknown.is_empty(), "settings the docs name that the integration document does not have: {unknown:?}");
    // Named on the configuration page (or, for filters, the processing page's "Filters") by
    // their path or, in their table's row, by their name.
    let (config, processing) = (page("docs/configuration.md"), page("docs/processing.md"));
    let undocumented: Vec<&String> = settings
        .iter()
        .filter(|s| !settings.iter().any(|other| other.starts_with(&format!("{s}."))))
        .filter(|s| {
            let leaf = s.rsplit('.').next().unwrap_or_default();
            let text = if s.starts_with("filters.") { &processing } else { &config };
            !text.contains(&format!("`{s}`")) && !text.contains(&format!("`{leaf}`"))
        })
        .collect();
    assert!(undocumented.is_empty(), "settings the docs do not name: {undocumented:?}");
}

/// Every metric the functions emit: the name of each `("Name", value, "Unit")` in the code
/// that writes metric records.
fn metrics_emitted() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut files = sources("shared/src/lambda");
    files.extend(sources("functions"));
    for (_, code) in files {
        for unit in ["\"Count\")", "\"Seconds\")", "\"Milliseconds\")", "\"Bytes\")"] {
            let mut rest = code.as_str();
            while let Some(at) = rest.find(unit) {
                let before = &rest[..at];
                if let Some(open) = before.rfind("(\"") {
                    let name = before[open + 2..].split('"').next().unwrap_or_default();
                    out.insert(name.to_owned());
                }
                rest = &rest[at + unit.len()..];
            }
        }
    }
    out
}

#[test]
fn the_metrics_table_is_every_metric_the_functions_emit() {
    let emitted = metrics_emitted();
    assert!(emitted.len() > 30 && emitted.contains("AlertsPublished") && emitted.contains("EvidenceJobsSwept"), "{emitted:?}");
    let operations = page("docs/operations.md");
    let table = operations.split("## Metrics").nth(1).expect("docs/operations.md has a Metrics section");
    let documented: BTreeSet<String> = table
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented.symmetric_difference(&emitted).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "docs/operations.md's Metrics table and the metrics the code emits differ"
    );
    // Every metric another page names is one of them (the template's parameters, resources
    // and outputs are named alike, and are not metrics).
    let template = page("template.yaml");
    let template_names: BTreeSet<&str> = template
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    for (path, text) in pages() {
        for span in code_spans(&text) {
            let looks_like_a_metric = span.len() > 4
                && span.chars().all(|c| c.is_ascii_alphanumeric())
                && span.starts_with(|c: char| c.is_ascii_uppercase())
                && [
                    "Sent",
                    "Polled",
                    "Published",
                    "Dropped",
                    "Failed",
                    "Seconds",
                    "Ended",
                    "Steps",
                    "Swept",
                    "Quarantined",
                    "Refused",
                    "Filtered",
                ]
                .iter()
                .any(|suffix| span.ends_with(suffix));
            if looks_like_a_metric && !emitted.contains(span) && !template_names.contains(span) {
                panic!("{path} names `{span}`, which no function emits");
            }
        }
    }
}
