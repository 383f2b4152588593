//! The reporting mailbox as the simulator serves it (user-list-messages.md, message-get.md,
//! attachment-get.md, graph-throttling-limits.md; ms-apis.md §5): reports arriving over time,
//! the default page of 10 and `$skip` links, `InefficientFilter` when `$orderby` does not lead
//! the filter, `$select`, MIME by `$value` for the message and for an attached item, file
//! attachments, `ErrorAccessDenied` outside the app's policy, and Outlook's 4 concurrent
//! requests per mailbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashSet;

use common::{fixed_scenario, Harness};
use serde_json::Value;
use tenant_sim::Scenario;

const MAILBOX: &str = "phish@contoso.onmicrosoft.com";

fn inbox() -> String {
    format!("/v1.0/users/{MAILBOX}/mailFolders/inbox/messages")
}

fn scenario() -> Scenario {
    let mut s = fixed_scenario();
    s.tenants[0].mailbox.count = 45;
    s
}

fn q(filter: &str) -> String {
    form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

async fn raw(h: &Harness, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let r = h.http.get(h.url(path)).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_inbox_pages_by_ten_with_skip_links_and_filters_on_received_time() {
    let h = Harness::start(scenario()).await;
    let t = h.graph_token().await;
    let (status, _, first) = h.get(&inbox(), &t, false).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["value"].as_array().unwrap().len(), 10, "the default page is 10");
    let link = first["@odata.nextLink"].as_str().unwrap();
    assert!(link.contains("%24skip=10") || link.contains("$skip=10"), "{link}");
    let (all, pages) = h.get_all(&inbox(), &t, false).await;
    let ids: HashSet<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!((ids.len(), pages), (all.len(), all.len().div_ceil(10)));
    assert!(all.windows(2).all(|w| w[0]["receivedDateTime"].as_str() >= w[1]["receivedDateTime"].as_str()), "newest first by default");
    // The window filter with $orderby on the same property, first: accepted, oldest first.
    let (from, to) = ("2026-11-25T18:00:00Z", "2026-11-26T06:00:00Z");
    let filter = format!("receivedDateTime ge {from} and receivedDateTime lt {to} and isRead eq false");
    let (windowed, _) = h.get_all(&format!("{}?$filter={}&$orderby=receivedDateTime asc&$top=7", inbox(), q(&filter)), &t, false).await;
    let inside: Vec<&Value> = all
        .iter()
        .filter(|m| {
            let r = m["receivedDateTime"].as_str().unwrap();
            ("2026-11-25T18:00:00.0000000Z".."2026-11-26T06:00:00.0000000Z").contains(&r)
        })
        .collect();
    assert_eq!(windowed.len(), inside.len());
    assert!(!windowed.is_empty());
    assert!(windowed.windows(2).all(|w| w[0]["receivedDateTime"].as_str() <= w[1]["receivedDateTime"].as_str()));
    // $select keeps the page small.
    let (_, _, small) = h.get(&format!("{}?$select=receivedDateTime,subject", inbox()), &t, false).await;
    let keys: HashSet<&str> = small["value"][0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["@odata.etag", "id", "receivedDateTime", "subject"]));
}

#[tokio::test]
async fn orderby_not_leading_the_filter_is_an_inefficient_filter() {
    let h = Harness::start(scenario()).await;
    let t = h.graph_token().await;
    let filter = "isRead eq false and receivedDateTime ge 2026-11-25T00:00:00Z";
    let (status, _, body) = h.get(&format!("{}?$filter={}&$orderby=receivedDateTime", inbox(), q(filter)), &t, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("InefficientFilter")), "{body}");
    let (status, _, body) =
        h.get(&format!("{}?$filter={}&$orderby=subject", inbox(), q("receivedDateTime ge 2026-11-25T00:00:00Z")), &t, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("InefficientFilter")), "{body}");
    let (status, _, body) = h.get(&format!("{}?$filter={}", inbox(), q("bogus eq 1")), &t, false).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_report_carries_the_reported_email_as_mime() {
    let h = Harness::start(scenario()).await;
    let t = h.graph_token().await;
    let (all, _) = h.get_all(&inbox(), &t, false).await;
    let (mut items, mut files, mut inline) = (0, 0, 0);
    for m in &all {
        let id = m["id"].as_str().unwrap();
        let (status, ct, mime) = raw(&h, &format!("/v1.0/users/{MAILBOX}/messages/{id}/$value"), &t).await;
        assert_eq!((status, ct.as_str()), (200, "text/plain"));
        let mime = String::from_utf8(mime).unwrap();
        assert!(mime.contains("Message-ID: ") && mime.contains("\r\n\r\n"), "{mime}");
        let (status, _, list) = h.get(&format!("/v1.0/users/{MAILBOX}/messages/{id}/attachments"), &t, false).await;
        assert_eq!(status, 200, "{list}");
        let list = list["value"].as_array().unwrap();
        assert_eq!(m["hasAttachments"].as_bool(), Some(!list.is_empty()));
        for a in list {
            let aid = a["id"].as_str().unwrap();
            let (status, _, bytes) = raw(&h, &format!("/v1.0/users/{MAILBOX}/messages/{id}/attachments/{aid}/$value"), &t).await;
            assert_eq!(status, 200);
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("Authentication-Results: spf=") && text.contains("Content-Type: multipart/mixed"), "{text}");
            match a["@odata.type"].as_str().unwrap() {
                "#microsoft.graph.itemAttachment" => {
                    items += 1;
                    let path = format!("/v1.0/users/{MAILBOX}/messages/{id}/attachments/{aid}?$expand=microsoft.graph.itemattachment/item");
                    let (_, _, e) = h.get(&path, &t, false).await;
                    assert_eq!(e["item"]["@odata.type"], "#microsoft.graph.message");
                    assert!(text.contains(e["item"]["internetMessageId"].as_str().unwrap()));
                }
                "#microsoft.graph.fileAttachment" => {
                    files += 1;
                    assert_eq!(a["contentType"], "message/rfc822");
                }
                other => panic!("{other}"),
            }
        }
        if list.is_empty() {
            inline += 1;
            assert!(mime.contains("Authentication-Results"), "forwarded as is: {mime}");
        }
    }
    assert!(items > 0 && files > 0 && inline > 0, "{items} {files} {inline}");
}

#[tokio::test]
async fn outside_the_policy_access_is_denied_and_five_at_once_are_throttled() {
    let mut s = scenario();
    s.tenants[0].apps[0].mailbox_scope = Some(vec!["soc@contoso.onmicrosoft.com".into()]);
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let (status, _, body) = h.get(&inbox(), &t, false).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["message"].as_str()),
        (403, Some("ErrorAccessDenied"), Some("Access to OData is disabled."))
    );

    let mut s = scenario();
    s.graph.mailbox_latency_ms = 300;
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let path = inbox();
    let call = || h.get(&path, &t, false);
    let (a, b, c, d, e, f) = tokio::join!(call(), call(), call(), call(), call(), call());
    let answers = [a, b, c, d, e, f];
    let throttled: Vec<&(u16, reqwest::header::HeaderMap, Value)> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(answers.iter().filter(|(s, _, _)| *s == 200).count(), 4, "four at once per mailbox");
    assert_eq!(throttled.len(), 2);
    assert!(throttled.iter().all(|(_, h, b)| h.get("retry-after").is_some() && b["error"]["code"] == "ApplicationThrottled"));
}

/// Every other user's mailbox holds the emails alerts say reached it (analyzedMessageEvidence
/// delivered to the inbox, junk or deleted items), found by `internetMessageId` with its MIME,
/// times in whole seconds, under the access policy; a quarantined email is not in the mailbox.
#[tokio::test]
async fn a_recipients_mailbox_holds_the_emails_alerts_say_were_delivered() {
    let mut s = fixed_scenario();
    s.tenants[0].alerts.count = 200;
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let (_, _, alerts) = h.get("/v1.0/security/alerts_v2?$top=1000", &t, true).await;
    let emails: Vec<(String, String, String)> = alerts["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["evidence"].as_array().unwrap().clone())
        .filter(|e| e["@odata.type"] == "#microsoft.graph.security.analyzedMessageEvidence")
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("internetMessageId"), text("recipientEmailAddress"), text("deliveryLocation"))
        })
        .collect();
    let delivered = emails.iter().find(|(_, _, l)| l == "inbox").expect("an email delivered to an inbox");
    let quarantined = emails.iter().find(|(_, _, l)| l == "quarantine").expect("a quarantined email");
    let find = |(id, recipient, _): &(String, String, String)| {
        format!(
            "/v1.0/users/{recipient}/messages?$filter={}&$select=id,internetMessageId,receivedDateTime",
            q(&format!("internetMessageId eq '{id}'"))
        )
    };
    let (status, _, found) = h.get(&find(delivered), &t, false).await;
    assert_eq!(status, 200, "{found}");
    let found = found["value"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["internetMessageId"], delivered.0.as_str());
    let received = found[0]["receivedDateTime"].as_str().unwrap();
    assert!(received.len() == 20 && received.ends_with('Z'), "whole seconds: {received}");
    let id = found[0]["id"].as_str().unwrap();
    let (status, _, mime) = raw(&h, &format!("/v1.0/users/{}/messages/{id}/$value", delivered.1), &t).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&mime).contains(&format!("Message-ID: {}", delivered.0)));
    // A quarantined email is not in its recipient's mailbox.
    let (status, _, none) = h.get(&find(quarantined), &t, false).await;
    assert_eq!((status, none["value"].as_array().map(Vec::len)), (200, Some(0)), "{none}");
    // Outside the app's access policy: refused, as any mailbox.
    let mut s = fixed_scenario();
    s.tenants[0].alerts.count = 200;
    s.tenants[0].apps[0].mailbox_scope = Some(vec!["soc@contoso.onmicrosoft.com".into()]);
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let (status, _, body) = h.get(&find(delivered), &t, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("ErrorAccessDenied")), "{body}");
}
