//! `m365-ingest redrive` against moto: a dry run moves nothing, a run moves what it is asked
//! to, and the dead-letter queue is left empty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use aws_sdk_sqs::types::QueueAttributeName;
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, GateStack, Principal};

const BIN: &str = env!("CARGO_BIN_EXE_m365-ingest");

async fn depth(c: &AwsClients, url: &str) -> u64 {
    let a =
        c.sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::ApproximateNumberOfMessages).send().await.unwrap();
    a.attributes().and_then(|m| m.get(&QueueAttributeName::ApproximateNumberOfMessages)).and_then(|v| v.parse().ok()).unwrap()
}

/// As an operator with the template's OperatorPolicy runs it.
fn redrive(operator: &[(&'static str, String)], from: &str, to: &str, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["redrive", "--from", from, "--to", to]).args(extra).env_remove("AWS_SESSION_TOKEN").env_remove("AWS_PROFILE");
    for (k, v) in operator {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_dead_letters_back_and_a_dry_run_moves_none() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `bash infra/scripts/test.sh`, which starts moto");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only");
    let c = AwsClients::new(&load_sdk_config().await);
    let suffix =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    let dlq = c.sqs.create_queue().queue_name(format!("rd-dlq-{suffix}")).send().await.unwrap().queue_url.unwrap();
    let intake = c.sqs.create_queue().queue_name(format!("rd-intake-{suffix}")).send().await.unwrap().queue_url.unwrap();
    let stack = GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
    stack.register_queue("IntakeDeadLetterQueue", &dlq).await.unwrap();
    stack.register_queue("IntakeQueue", &intake).await.unwrap();
    // The queues take an operator's messages (backfill, redrive) only when the stack names them.
    stack.parameter("OperatorPrincipalArns", &stack.role_arn(Principal::Operator)).await.unwrap();
    let op = stack.env(Principal::Operator);
    for i in 0..3 {
        let body = format!(
            r#"{{"schema":"m365-ingest.intake.v1","integration_id":"contoso","source":"defender_alerts","id":"a{i}","version":"2026-11-27T10:00:00.0000000Z"}}"#
        );
        c.sqs.send_message().queue_url(&dlq).message_body(body).send().await.unwrap();
    }

    let (from, to, op2) = (dlq.clone(), intake.clone(), op.clone());
    let out = tokio::task::spawn_blocking(move || redrive(&op2, &from, &to, &["--dry-run"])).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("dry run: about 3 message(s)") && text.contains("intake: contoso defender_alerts a"), "{text}");
    assert_eq!((depth(&c, &dlq).await, depth(&c, &intake).await), (3, 0), "a dry run moves nothing and hides nothing");

    let (from, to, op2) = (dlq.clone(), intake.clone(), op.clone());
    let out = tokio::task::spawn_blocking(move || redrive(&op2, &from, &to, &["--max", "2"])).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("moved 2 message(s)"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!((depth(&c, &dlq).await, depth(&c, &intake).await), (1, 2));

    let (from, to, op2) = (dlq.clone(), intake.clone(), op.clone());
    let out = tokio::task::spawn_blocking(move || redrive(&op2, &from, &to, &[])).await.unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("moved 1 message(s)"));
    assert_eq!((depth(&c, &dlq).await, depth(&c, &intake).await), (0, 3));
    let bodies: Vec<String> = c
        .sqs
        .receive_message()
        .queue_url(&intake)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages()
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    assert!(bodies.iter().all(|b| b.contains("m365-ingest.intake.v1")), "bodies moved unchanged");

    let out = Command::new(BIN).args(["redrive", "--from", &dlq, "--to", "http://127.0.0.1:1/none"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an unreachable target is refused before anything moves");
    assert_eq!(depth(&c, &dlq).await, 0);
    assert_eq!(stack.denials().await.unwrap(), Vec::<String>::new(), "the operator policy allows a redrive");
}
