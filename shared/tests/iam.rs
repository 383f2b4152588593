//! The other half of least privilege: what template.yaml does not grant a function, the test
//! world refuses it as AWS would (the IAM gate in front of moto), naming the function, the
//! action and the resource; what it grants goes through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use aws_sdk_dynamodb::types::AttributeValue;
use support::moto::{self, Principal};

fn denied<T, E: std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => panic!("IAM would have denied this call"),
        Err(e) => format!("{e:?}"),
    }
}

#[tokio::test]
async fn each_function_is_refused_what_its_policy_does_not_grant() {
    let stack = moto::stack().await;
    stack.gate.expect_denials().await.unwrap();
    let (state, dedup, bucket) = (stack.state_table().await, stack.dedup_table().await, stack.bucket().await);
    let output = stack.queue("OutputQueue").await;
    let key = |pk: &str, sk: Option<&str>| {
        let mut k = std::collections::HashMap::from([("pk".to_owned(), AttributeValue::S(pk.into()))]);
        if let Some(sk) = sk {
            k.insert("sk".into(), AttributeValue::S(sk.into()));
        }
        k
    };

    // The poller: its own keys yes; a scan, another item type, the dedup table, the output
    // queue and the processor's prefixes no.
    let poller = stack.clients(Principal::Poller);
    poller.dynamodb.get_item().table_name(&state).set_key(Some(key("integration#a", Some("config")))).send().await.unwrap();
    let e = denied(poller.dynamodb.scan().table_name(&state).send().await);
    assert!(e.contains("PollerFunction") && e.contains("dynamodb:Scan"), "{e}");
    denied(poller.dynamodb.get_item().table_name(&state).set_key(Some(key("remediation/x", Some("config")))).send().await);
    denied(poller.dynamodb.get_item().table_name(&dedup).set_key(Some(key("defender_alerts/t/a", None))).send().await);
    denied(poller.sqs.send_message().queue_url(&output).message_body("x").send().await);
    denied(poller.s3.put_object().bucket(&bucket).key("output/x").body(b"x".to_vec().into()).send().await);
    poller.s3.put_object().bucket(&bucket).key("intake/x").body(b"x".to_vec().into()).send().await.unwrap();

    // Test & Save: never a scan.
    let check = stack.clients(Principal::Check);
    denied(check.dynamodb.scan().table_name(&state).send().await);
    check
        .dynamodb
        .query()
        .table_name(&state)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", AttributeValue::S("secret#m365-ingest/a".into()))
        .send()
        .await
        .unwrap();
    // Its probes spend the tenant's budgets and hold mailbox slots; it updates nothing else.
    let spend = |pk: &str, sk: &str| {
        check
            .dynamodb
            .update_item()
            .table_name(&state)
            .set_key(Some(key(pk, Some(sk))))
            .update_expression("SET x = :x")
            .expression_attribute_values(":x", AttributeValue::N("1".into()))
            .send()
    };
    spend("budget#contoso", "graph#app#a%40contoso.com#held#0").await.unwrap();
    denied(spend("integration#a", "cursor#defender_alerts").await);

    // The processor reads records and spends budgets, but writes no record or cursor.
    let processor = stack.clients(Principal::Processor);
    denied(
        processor
            .dynamodb
            .update_item()
            .table_name(&state)
            .set_key(Some(key("integration#a", Some("cursor#defender_alerts"))))
            .update_expression("SET x = :x")
            .expression_attribute_values(":x", AttributeValue::N("1".into()))
            .send()
            .await,
    );
    processor.sqs.send_message().queue_url(&output).message_body("x").send().await.unwrap();
    // Its own dedup keys, never the remediator's audit records beside them.
    processor.dynamodb.get_item().table_name(&dedup).set_key(Some(key("defender_alerts/t/a/v", None))).send().await.unwrap();
    denied(processor.dynamodb.put_item().table_name(&dedup).set_item(Some(key("remediation/contoso/r1", None))).send().await);

    // The dispatcher reads no secret.
    let dispatch = stack.clients(Principal::Dispatch);
    denied(dispatch.secrets.get_secret_value().secret_id("m365-ingest/a").send().await);

    let lines = stack.denials().await;
    assert_eq!(lines.len(), 10, "{lines:#?}");
    assert!(lines.contains(&format!("CheckFunction dynamodb:Scan on arn:aws:dynamodb:us-east-1:123456789012:table/{state}")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("PollerFunction s3:PutObject on arn:aws:s3:::") && l.ends_with("/output/x")), "{lines:#?}");
}

#[tokio::test]
async fn a_query_on_the_schedule_index_is_authorized_against_the_index() {
    let stack = moto::stack().await;
    stack.gate.expect_denials().await.unwrap();
    let state = stack.state_table().await;
    let query = |who: Principal| {
        let c = stack.clients(who);
        let state = state.clone();
        async move {
            c.dynamodb
                .query()
                .table_name(&state)
                .index_name(m365_ingest::adapters::aws::DUE_INDEX)
                .key_condition_expression("due_shard = :s")
                .expression_attribute_values(":s", AttributeValue::S("due#defender_alerts#0".into()))
                .send()
                .await
        }
    };
    query(Principal::Dispatch).await.unwrap();
    denied(query(Principal::Poller).await);
}

/// The queue policies: a queue takes messages only from the stack's roles that produce them, the
/// operators named in OperatorPrincipalArns, and (remediation requests) the principals named in
/// RemediationSenderArns; another principal's own policy granting the send changes nothing.
#[tokio::test]
async fn each_queue_takes_messages_only_from_its_senders() {
    let stack = moto::stack().await;
    stack.gate.expect_denials().await.unwrap();
    let (intake, remediation) = (stack.queue("IntakeQueue").await, stack.queue("RemediationQueue").await);
    let send = |who: Principal, url: &str| {
        let c = stack.clients(who);
        let url = url.to_owned();
        async move { c.sqs.send_message().queue_url(url).message_body("{}").send().await }
    };
    send(Principal::Poller, &intake).await.unwrap();
    // The operator's policy grants the send (redrive, backfill); the queue refuses an operator
    // the stack does not name.
    let e = denied(send(Principal::Operator, &intake).await);
    assert!(e.contains("explicit deny in a resource-based policy"), "{e}");
    denied(send(Principal::Operator, &remediation).await);
    stack.gate.parameter("OperatorPrincipalArns", &stack.gate.role_arn(Principal::Operator)).await.unwrap();
    send(Principal::Operator, &intake).await.unwrap();
    // Remediation requests: RemediationSenderArns only, operators included.
    denied(send(Principal::Operator, &remediation).await);
    stack.gate.parameter("RemediationSenderArns", &stack.gate.role_arn(Principal::Operator)).await.unwrap();
    send(Principal::Operator, &remediation).await.unwrap();
    assert_eq!(stack.denials().await.len(), 3);
}
