//! The stack template.yaml defines, made on any AWS-compatible endpoint (moto, LocalStack, an
//! account of one's own) for running the functions' code locally: its tables, its queues with
//! their visibility timeouts, retention and dead-letter redrives, and its bucket, each named
//! `<prefix>-<logical id>`; and the functions' variables that name them. Read from the template
//! itself, so a queue added there is made here too.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;

use super::provision::{create_dedup_table, create_state_table};
use super::sdk::describe;
use super::AwsClients;

/// A resource of the template this module makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub logical_id: String,
    pub kind: Kind,
    /// `Properties` this module applies, as the template writes them (queues only).
    pub properties: BTreeMap<String, String>,
    /// The queue its messages go to after `maxReceiveCount` receives, and that count.
    pub dead_letter: Option<(String, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Table,
    Queue,
    Bucket,
}

/// The queue properties made as the template has them (the rest, e.g. encryption, are the
/// endpoint's business).
const QUEUE_PROPERTIES: [&str; 3] = ["VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds"];

/// The template's tables, queues and bucket, in template order.
pub fn resources(template: &str) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    for (logical_id, body) in top_level_resources(template) {
        let Some(kind) = body.iter().find_map(|l| match l.trim() {
            "Type: AWS::DynamoDB::Table" => Some(Kind::Table),
            "Type: AWS::SQS::Queue" => Some(Kind::Queue),
            "Type: AWS::S3::Bucket" => Some(Kind::Bucket),
            _ => None,
        }) else {
            continue;
        };
        let mut properties = BTreeMap::new();
        let mut target = None;
        let mut count = None;
        for line in &body {
            let t = line.trim();
            if let Some((key, value)) = t.split_once(": ") {
                if QUEUE_PROPERTIES.contains(&key) && line.starts_with("      ") && !line.starts_with("       ") {
                    properties.insert(key.to_owned(), value.trim().to_owned());
                }
                if key == "deadLetterTargetArn" {
                    let arn = value.trim().strip_prefix("!GetAtt ").and_then(|v| v.strip_suffix(".Arn"));
                    target = Some(arn.ok_or_else(|| format!("{logical_id}: deadLetterTargetArn is not `!GetAtt <Queue>.Arn`"))?.to_owned());
                }
                if key == "maxReceiveCount" {
                    count =
                        Some(value.trim().parse::<u32>().map_err(|_| format!("{logical_id}: maxReceiveCount `{value}` is not a number"))?);
                }
            }
        }
        let dead_letter = match (target, count) {
            (Some(t), Some(c)) => Some((t, c)),
            (None, None) => None,
            _ => return Err(format!("{logical_id}: a RedrivePolicy needs both deadLetterTargetArn and maxReceiveCount")),
        };
        out.push(Resource { logical_id, kind, properties, dead_letter });
    }
    Ok(out)
}

/// Each variable a function of the template sets to `!Ref <resource>`, with that resource.
pub fn variables(template: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, body) in top_level_resources(template) {
        if !body.iter().any(|l| l.trim() == "Type: AWS::Serverless::Function") {
            continue;
        }
        let mut in_variables = false;
        for line in body {
            let indent = line.len() - line.trim_start().len();
            if line.trim() == "Variables:" {
                in_variables = true;
                continue;
            }
            if in_variables && indent <= 8 && !line.trim().is_empty() {
                in_variables = false;
            }
            if let (true, Some((name, value))) = (in_variables, line.trim().split_once(": ")) {
                if let Some(logical) = value.trim().strip_prefix("!Ref ") {
                    out.insert(name.to_owned(), logical.trim().to_owned());
                }
            }
        }
    }
    out
}

/// Makes every table, queue and bucket of the template under `prefix` in `region` (again is
/// fine: what exists is kept) and returns the functions' variables that name them, with their
/// values.
pub async fn create(c: &AwsClients, region: Option<&str>, template: &str, prefix: &str) -> Result<BTreeMap<String, String>, String> {
    let well_formed = prefix.len() <= 30
        && prefix.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && prefix.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    if !well_formed {
        return Err(format!(
            "the prefix `{prefix}` must be 1 to 30 lower-case letters, digits and dashes, starting with a letter or digit (it starts \
             bucket names, which are global on AWS: in an account of your own, choose one nobody else uses)"
        ));
    }
    let resources = resources(template)?;
    let mut made: BTreeMap<String, String> = BTreeMap::new();
    // Dead-letter queues first: a queue's redrive names its dead-letter queue's ARN.
    let mut queues: Vec<&Resource> = resources.iter().filter(|r| r.kind == Kind::Queue).collect();
    queues.sort_by_key(|r| r.dead_letter.is_some());
    for r in resources.iter().filter(|r| r.kind != Kind::Queue).chain(queues) {
        let name = format!("{prefix}-{}", r.logical_id);
        let value = match r.kind {
            Kind::Table => {
                let made = match r.logical_id.as_str() {
                    "StateTable" => create_state_table(&c.dynamodb, &name).await,
                    "DedupTable" => create_dedup_table(&c.dynamodb, &name).await,
                    other => return Err(format!("the template's table {other} has no shape here: add it to adapters/aws/provision.rs")),
                };
                if let Err(e) = made {
                    if c.dynamodb.describe_table().table_name(&name).send().await.is_err() {
                        return Err(format!("cannot create the table {name}: {e}"));
                    }
                }
                name
            }
            Kind::Bucket => {
                let name = name.to_ascii_lowercase();
                let mut create = c.s3.create_bucket().bucket(&name);
                // Outside us-east-1 S3 wants the bucket's region named.
                if let Some(region) = region.filter(|r| *r != "us-east-1") {
                    create = create.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                            .build(),
                    );
                }
                if let Err(e) = create.send().await {
                    if c.s3.head_bucket().bucket(&name).send().await.is_err() {
                        return Err(format!("cannot create the bucket {name}: {}", describe(&e)));
                    }
                }
                name
            }
            Kind::Queue => {
                let mut create = c.sqs.create_queue().queue_name(&name);
                for (key, value) in &r.properties {
                    create = create.attributes(QueueAttributeName::from(key.as_str()), value);
                }
                if let Some((target, count)) = &r.dead_letter {
                    let url = made
                        .get(target)
                        .ok_or_else(|| format!("{}: its dead-letter queue {target} is not a queue of the template", r.logical_id))?;
                    let arn = c
                        .sqs
                        .get_queue_attributes()
                        .queue_url(url)
                        .attribute_names(QueueAttributeName::QueueArn)
                        .send()
                        .await
                        .map_err(|e| format!("cannot read {target}'s ARN: {}", describe(&e)))?
                        .attributes()
                        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                        .ok_or_else(|| format!("{target} has no ARN"))?;
                    let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": count}).to_string();
                    create = create.attributes(QueueAttributeName::RedrivePolicy, policy);
                }
                create
                    .send()
                    .await
                    .map_err(|e| format!("cannot create the queue {name}: {}", describe(&e)))?
                    .queue_url
                    .ok_or_else(|| format!("the endpoint gave no URL for the queue {name}"))?
            }
        };
        made.insert(r.logical_id.clone(), value);
    }
    Ok(variables(template).into_iter().filter_map(|(var, logical)| made.get(&logical).map(|v| (var, v.clone()))).collect())
}

/// The template's top-level resources: each name (two-space indent) and its lines.
fn top_level_resources(template: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    let mut in_resources = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_resources = line.trim_end() == "Resources:";
            continue;
        }
        if !in_resources {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && line.trim_end().ends_with(':') && !line.trim_start().starts_with('#') {
            out.push((line.trim().trim_end_matches(':').to_owned(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../../template.yaml");

    #[test]
    fn the_templates_queues_tables_and_bucket_are_read_with_their_redrives() {
        let r = resources(TEMPLATE).unwrap_or_default();
        let find = |id: &str| r.iter().find(|x| x.logical_id == id).cloned();
        let jobs = find("PollJobsQueue").map(|q| (q.kind, q.properties.get("VisibilityTimeout").cloned(), q.dead_letter));
        assert_eq!(jobs, Some((Kind::Queue, Some("1800".into()), Some(("PollJobsDeadLetterQueue".into(), 3)))));
        assert_eq!(find("IntakeQueue").and_then(|q| q.dead_letter), Some(("IntakeDeadLetterQueue".into(), 5)));
        assert_eq!(find("StateTable").map(|t| t.kind), Some(Kind::Table));
        assert_eq!(find("ArtifactBucket").map(|t| t.kind), Some(Kind::Bucket));
        // Policies, functions and alarms are not made here.
        assert!(find("IntakeQueuePolicy").is_none() && find("PollerFunction").is_none());
        let v = variables(TEMPLATE);
        assert_eq!(v.get("POLL_JOBS_QUEUE_URL").map(String::as_str), Some("PollJobsQueue"));
        assert_eq!(v.get("STATE_TABLE").map(String::as_str), Some("StateTable"));
        assert_eq!(v.get("ACTIONS_RESULT_QUEUE_URL").map(String::as_str), Some("ActionsResultQueue"));
        // Parameters are not resources: they stay the operator's to set.
        let made: Vec<&String> = r.iter().map(|x| &x.logical_id).collect();
        assert!(
            v.values().filter(|l| !made.contains(l)).all(|l| [
                "SecretPrefix",
                "MicrosoftCloud",
                "MaxMessageBytes",
                "RemediationAuditDays",
                "EvidenceMaxWaitSecs",
                "EvidenceMaxFileBytes"
            ]
            .contains(&l.as_str())
                || l.ends_with("Url")),
            "{v:?}"
        );
    }
}
