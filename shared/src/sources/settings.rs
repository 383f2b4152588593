//! What a poll run reads and sends at most: the settings the sources and the poll driver share
//! (they live below both, so neither imports the other back).

use std::time::Duration;

/// Messages per request: Outlook's default is 10; pages of full messages risk a 504
/// (user-list-messages.md), and `$select` keeps these small.
pub const MAILBOX_PAGE_SIZE: usize = 50;

#[derive(Debug, Clone)]
pub struct PollSettings {
    /// `$top` of alert pages: Graph's maximum (ms-apis.md §2).
    pub alert_page_size: usize,
    /// `$top` of incident pages: 50 with `$expand=alerts` is the most Elastic found to work.
    pub incident_page_size: usize,
    /// Cloud Apps answers at most 100 alerts per request (api-introduction.md).
    pub cloud_apps_page_size: usize,
    /// `$top` of submission pages: the list documents no maximum; 100 is what Graph's
    /// security lists commonly take.
    pub submission_page_size: usize,
    /// `$top` of the phishing mailbox's listing: with `$select` a page is small; a span is three
    /// pages, whose reports' emails a run fetches as far as its request cap allows.
    pub mailbox_page_size: usize,
    /// Requests per run of a mailbox (listing and reported emails): Outlook allows an app
    /// 10,000 per mailbox per 10 minutes (ms-apis.md §11); a run every 5 minutes at this cap
    /// uses at most 40% of that.
    pub mailbox_requests_per_run: usize,
    /// Unsettled items (submissions awaiting a verdict) re-read by id per run, in turn.
    pub settle_per_run: usize,
    /// An unsettled item older than this (by its version) is no longer re-read: Microsoft
    /// gave no verdict in time.
    pub settle_within: Duration,
    /// `$skip` above 500 is refused by Graph.
    pub max_skip: usize,
    /// Requests per integration per run.
    pub max_pages: usize,
    /// A span is read whole before delivery; it holds at most this many pages of items
    /// (bounds memory: 3 × 1000 alerts of a few KB).
    pub max_span_pages: usize,
    /// Re-reads of a tie (items sharing one timestamp) whose order the API does not keep.
    pub tie_passes: usize,
    /// Reading stops while this much of the run's time is left, sending at half of it: the
    /// rest commits and releases (AWS calls time out in 15 s, sdk.rs).
    pub safety_margin: Duration,
    /// Versions remembered for the overlap (capped by the cursor's byte bound); beyond it
    /// duplicates are allowed, never gaps.
    pub max_recent: usize,
    /// Integrations polled at once.
    pub concurrency: usize,
    pub delivery: DeliverySettings,
    /// Identifies this run in leases.
    pub owner: String,
    /// The deployment's Microsoft cloud: a source Microsoft does not offer there is not polled.
    pub cloud: crate::domain::cloud::Cloud,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            alert_page_size: 1000,
            incident_page_size: 50,
            cloud_apps_page_size: 100,
            submission_page_size: 100,
            mailbox_page_size: MAILBOX_PAGE_SIZE,
            mailbox_requests_per_run: 2_000,
            settle_per_run: 50,
            settle_within: Duration::from_secs(7 * 24 * 3600),
            max_skip: 500,
            max_pages: 500,
            max_span_pages: 3,
            tie_passes: 20,
            safety_margin: Duration::from_secs(40),
            max_recent: crate::domain::polling::cursor::MAX_RECENT,
            concurrency: 4,
            delivery: DeliverySettings::default(),
            owner: "poller".into(),
            cloud: crate::domain::cloud::Cloud::Global,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Largest message body; larger objects go to the artifact store. SQS takes 1 MiB today
    /// (moto and AWS alike, TOOLING.md §2); configurable lower.
    pub max_message_bytes: usize,
    /// Largest SendMessageBatch payload (the same 1 MiB on AWS).
    pub max_batch_bytes: usize,
    /// Attempts per batch for entries that failed retryably.
    pub send_attempts: u32,
    pub retry_delay: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings { max_message_bytes: 1 << 20, max_batch_bytes: 1 << 20, send_attempts: 4, retry_delay: Duration::from_millis(200) }
    }
}
