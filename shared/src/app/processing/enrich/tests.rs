//! The enricher against Microsoft as a table: parts filled, answers shared and cached,
//! presence batched, failures as statuses.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;
use serde_json::json;

use crate::app::processing::enrich::*;
use crate::domain::entities::{Device, User};
use crate::domain::integration::sections::FeaturesDoc;
use crate::error::GraphError;

/// Microsoft as a table: answers by request kind, counting requests.
struct Table {
    calls: AtomicUsize,
    presence_calls: AtomicUsize,
    fail: Option<fn(&ContextRequest) -> Option<GraphError>>,
}

impl ContextApi for Table {
    fn lookup<'a>(&'a self, _: &'a Integration, r: &'a ContextRequest) -> BoxFuture<'a, Result<ContextAnswer, GraphError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(e) = self.fail.and_then(|f| f(r)) {
                return Err(e);
            }
            Ok(match r {
                ContextRequest::User { user } => ContextAnswer::One(
                    json!({"id": format!("00000000-0000-0000-0000-{:0>12}", user.len()), "userPrincipalName": user, "accountEnabled": true, "department": "Finance"}),
                ),
                ContextRequest::Memberships { .. } => ContextAnswer::Many {
                    items: vec![
                        json!({"@odata.type": "#microsoft.graph.directoryRole", "displayName": "Global Administrator", "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"}),
                    ],
                    more: false,
                },
                ContextRequest::Presences { ids } => {
                    self.presence_calls.fetch_add(1, Ordering::SeqCst);
                    ContextAnswer::Many { items: ids.iter().map(|id| json!({"id": id, "availability": "Away"})).collect(), more: false }
                }
                ContextRequest::Machine { .. } => ContextAnswer::Missing,
                _ => ContextAnswer::One(json!({})),
            })
        })
    }
}

fn integration(parts: &[ContextPart]) -> Integration {
    let mut i = Integration::new("contoso", "t", "c", "s");
    i.features = FeaturesDoc { user_context: true, calendar: true, device_context: true, ..FeaturesDoc::default() };
    i.enrichment.parts = Some(parts.to_vec());
    i
}

fn entities(users: &[&str]) -> Entities {
    Entities {
        users: users.iter().map(|u| User { upn: Some((*u).into()), ..User::default() }).collect(),
        devices: vec![Device { mde_device_id: Some("m1".into()), ..Device::default() }],
        ..Entities::default()
    }
}

fn enricher(fail: Option<fn(&ContextRequest) -> Option<GraphError>>) -> (Arc<Table>, Enricher) {
    let table = Arc::new(Table { calls: AtomicUsize::new(0), presence_calls: AtomicUsize::new(0), fail });
    (table.clone(), Enricher::new(table, EnrichSettings::default()))
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Microsoft answering after a moment, counting requests.
struct Slow(AtomicUsize);

impl ContextApi for Slow {
    fn lookup<'a>(&'a self, _: &'a Integration, _: &'a ContextRequest) -> BoxFuture<'a, Result<ContextAnswer, GraphError>> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(ContextAnswer::One(json!({"id": "00000000-0000-0000-0000-000000000001", "userPrincipalName": "a@contoso.com"})))
        })
    }
}

#[tokio::test]
async fn alerts_side_by_side_about_one_user_ask_once_and_a_dropped_asker_lets_the_next_ask() {
    let api = Arc::new(Slow(AtomicUsize::new(0)));
    let e = Enricher::new(api.clone(), EnrichSettings::default());
    let i = integration(&[ContextPart::Profile]);
    let at = GraphTime::from_unix_seconds(1_800_000_000);
    let who = entities(&["a@contoso.com"]);
    let all = join_all((0..10).map(|_| e.context(&i, &who, at, later()))).await;
    assert!(all.iter().all(|s| s.as_ref().is_some_and(|s| s.enrichment["profile"].status == "ok")));
    assert_eq!(api.0.load(Ordering::SeqCst), 1, "one request for ten alerts");
    // The asker dropped mid-way (its caller gave up): the one waiting asks itself.
    let i = Integration { tenant_id: "t2".into(), ..i };
    let dropped = tokio::time::timeout(Duration::from_millis(20), e.context(&i, &who, at, later()));
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        e.context(&i, &who, at, later()).await
    };
    let (gone, s) = tokio::join!(dropped, waiting);
    assert!(gone.is_err(), "dropped at 20 ms");
    assert_eq!(s.map(|s| s.enrichment["profile"].status.clone()).as_deref(), Some("ok"));
    assert_eq!(api.0.load(Ordering::SeqCst), 3, "asked again once the first asker was gone");
}

#[tokio::test]
async fn parts_fill_the_section_and_answers_are_reused_within_their_ttl() {
    let (table, e) = enricher(None);
    let i = integration(&[ContextPart::Profile, ContextPart::Roles, ContextPart::Device]);
    let at = GraphTime::from_unix_seconds(1_800_000_000);
    let Some(s) = e.context(&i, &entities(&["a@contoso.com"]), at, later()).await else { panic!("asked for parts") };
    let u = &s.users[0];
    assert_eq!(u.profile.as_ref().and_then(|p| p.department.as_deref()), Some("Finance"));
    assert_eq!(u.is_admin, Some(true));
    assert!(u.groups.is_none(), "groups were not asked for");
    assert_eq!(s.enrichment["device"].status, "not_found");
    assert_eq!(s.enrichment["profile"].status, "ok");
    let first = table.calls.load(Ordering::SeqCst);
    assert_eq!(first, 3);
    e.context(&i, &entities(&["a@contoso.com"]), at, later()).await;
    assert_eq!(table.calls.load(Ordering::SeqCst), first, "all three answers came from the cache");
    let mut no_cache = i.clone();
    no_cache.enrichment.cache_ttl.0 = Duration::ZERO;
    no_cache.tenant_id = "t2".into();
    e.context(&no_cache, &entities(&["a@contoso.com"]), at, later()).await;
    e.context(&no_cache, &entities(&["a@contoso.com"]), at, later()).await;
    assert_eq!(table.calls.load(Ordering::SeqCst), first + 6, "cache_ttl = 0s asks every time");
}

#[tokio::test]
async fn presence_of_concurrent_alerts_is_asked_in_one_request() {
    let (table, e) = enricher(None);
    let i = integration(&[ContextPart::Profile, ContextPart::Presence]);
    let at = GraphTime::from_unix_seconds(1_800_000_000);
    let users: Vec<String> = (0..12).map(|n| format!("user{}@contoso.com", "x".repeat(n))).collect();
    let all: Vec<Entities> = users.iter().map(|u| entities(&[u.as_str()])).collect();
    let sections = join_all(all.iter().map(|x| e.context(&i, x, at, later()))).await;
    assert!(sections.iter().all(|s| s.as_ref().is_some_and(|s| s.enrichment["presence"].status == "ok")));
    assert_eq!(table.presence_calls.load(Ordering::SeqCst), 1, "12 users, one getPresencesByUserId");
}

#[tokio::test]
async fn failures_become_statuses_and_never_an_error() {
    let (_, e) = enricher(Some(|r| match r {
        ContextRequest::Memberships { .. } => {
            Some(GraphError::Http { api: "Graph", status: 403, code: "Authorization_RequestDenied".into(), message: "no".into() })
        }
        ContextRequest::Machine { .. } => Some(GraphError::OverBudget { api: "Defender for Endpoint", within: Duration::from_secs(2) }),
        ContextRequest::SignIns { .. } => Some(GraphError::Http { api: "Graph", status: 500, code: String::new(), message: "boom".into() }),
        _ => None,
    }));
    let i = integration(&[ContextPart::Profile, ContextPart::Roles, ContextPart::Groups, ContextPart::SignIns, ContextPart::Device]);
    let Some(s) = e.context(&i, &entities(&["a@contoso.com"]), GraphTime::from_unix_seconds(1_800_000_000), later()).await else {
        panic!("asked for parts")
    };
    assert_eq!(s.enrichment["roles"].status, "forbidden");
    assert_eq!(s.enrichment["groups"].status, "forbidden");
    assert_eq!(s.enrichment["device"].status, "throttled");
    assert_eq!(s.enrichment["sign_ins"].status, "failed");
    assert!(s.enrichment["sign_ins"].detail.as_deref().is_some_and(|d| d.contains("500")));
    assert_eq!(s.enrichment["profile"].status, "ok");
}

#[tokio::test]
async fn a_spent_batch_deadline_asks_nothing_more() {
    let (table, e) = enricher(None);
    let i = integration(&[ContextPart::Profile]);
    let Some(s) = e.context(&i, &entities(&["a@contoso.com"]), GraphTime::from_unix_seconds(1), Instant::now()).await else {
        panic!("asked for parts")
    };
    assert_eq!(s.enrichment["profile"].status, "timed_out");
    assert_eq!(table.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_throttled_service_is_skipped_for_a_while_without_asking() {
    let (table, e) = enricher(Some(|r| match r {
        ContextRequest::User { .. } => Some(GraphError::OverBudget { api: "Graph", within: Duration::from_secs(2) }),
        _ => None,
    }));
    let i = integration(&[ContextPart::Profile, ContextPart::Device]);
    let at = GraphTime::from_unix_seconds(1_800_000_000);
    for n in 0..5 {
        let Some(s) = e.context(&i, &entities(&[&format!("u{n}@contoso.com")]), at, later()).await else { panic!("parts") };
        assert_eq!(s.enrichment["profile"].status, "throttled");
    }
    // One user lookup was sent; the other four were skipped. The device (another service)
    // was asked once and then answered from the cache.
    assert_eq!(table.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn no_part_means_no_section() {
    let i = Integration::new("contoso", "t", "c", "s");
    assert!(i.enrichment.effective_parts(&i.features).is_empty());
}
