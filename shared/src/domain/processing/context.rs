//! Context for the users, devices and files an alert names (issue 14; ms-apis.md §9, §7): which
//! parts an integration asks for, what to ask Microsoft, how each answer becomes the bounded
//! `context` section of an `m365-ingest.alert.v1` message, and how each part went.
//!
//! Every list is capped and every string cut, so the section stays a few tens of KB at most
//! whatever a tenant holds (5 users × 200 groups × ~150 B is the largest term).
//!
//! This module holds the section itself; its pieces are its children: the parts and how each
//! went (`parts`), what an alert names (`subjects`), how answers are read bounded (`fields`),
//! and each answer's shape: users (`user`), their mailbox settings, calendar and presence
//! (`calendar`), and Defender's machines and files (`defender`).

mod calendar;
mod defender;
mod fields;
mod parts;
mod subjects;
mod user;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use calendar::{
    auto_replies_of, presence_of, schedule_of, AutoReplies, Presence, ScheduleAtAlert, ScheduleItem, MAX_SCHEDULE_ITEMS,
    SCHEDULE_INTERVAL_MINUTES,
};
pub use defender::{device_of, file_of, DeviceContext, FileContext};
pub use fields::MAX_TEXT;
pub use parts::{ContextPart, LookupOutcome, PartStatus, Tally};
pub use subjects::{subjects, Subjects, UserSubject, MAX_DEVICES, MAX_FILES, MAX_USERS};
pub use user::{
    memberships_of, mfa_of, profile_of, sign_ins_of, DirectoryRole, GroupRef, ManagerRef, Memberships, MfaRegistration, SignIn,
    UserContext, UserProfile,
};

/// The `context` section of an alert message (v1, additive).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextSection {
    pub users: Vec<UserContext>,
    pub devices: Vec<DeviceContext>,
    pub files: Vec<FileContext>,
    /// How each part the integration asks for went, by part name.
    pub enrichment: BTreeMap<String, PartStatus>,
}
