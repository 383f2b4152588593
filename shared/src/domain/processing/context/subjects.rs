//! What an alert names that context can be fetched for: its users (by object id or UPN), its
//! devices (Defender machine ids) and its files (hashes), each once and capped.

use crate::domain::entities::Entities;

/// Users, devices and files looked at per alert: an alert naming more is rare, and each one
/// costs calls against tight per-tenant limits.
pub const MAX_USERS: usize = 5;
pub const MAX_DEVICES: usize = 3;
pub const MAX_FILES: usize = 5;

/// A user to look up: by Entra object id where the alert gives one, else by UPN (Graph takes
/// either in `/users/{id|upn}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSubject {
    pub id: Option<String>,
    pub upn: Option<String>,
}

impl UserSubject {
    /// How Graph addresses the user: the object id, else the UPN.
    pub fn key(&self) -> &str {
        self.id.as_deref().or(self.upn.as_deref()).unwrap_or_default()
    }
}

/// What an alert names that context can be fetched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    pub users: Vec<UserSubject>,
    pub devices: Vec<String>,
    /// SHA-256 where known, else SHA-1 (the files API takes either).
    pub files: Vec<String>,
}

fn is_guid(v: &str) -> bool {
    v.len() == 36 && v.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn is_address(v: &str) -> bool {
    v.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !v.contains(char::is_whitespace))
}

/// The users (with an object id or a UPN; on-premises-only accounts cannot be looked up),
/// devices (Defender machine ids) and files (hashes) of an alert's entities, each once, capped.
pub fn subjects(e: &Entities) -> Subjects {
    let mut s = Subjects::default();
    let mut add_user = |id: Option<&str>, upn: Option<&str>| {
        let id = id.filter(|v| is_guid(v)).map(str::to_ascii_lowercase);
        let upn = upn.filter(|v| is_address(v)).map(str::to_ascii_lowercase);
        if id.is_none() && upn.is_none() {
            return;
        }
        let same = |u: &UserSubject| (id.is_some() && u.id == id) || (upn.is_some() && u.upn == upn);
        if let Some(known) = s.users.iter_mut().find(|u| same(u)) {
            known.id = known.id.take().or(id);
            known.upn = known.upn.take().or(upn);
        } else if s.users.len() < MAX_USERS {
            s.users.push(UserSubject { id, upn });
        }
    };
    for u in &e.users {
        add_user(u.aad_user_id.as_deref(), u.upn.as_deref());
    }
    for m in &e.mailboxes {
        add_user(None, Some(m));
    }
    for m in &e.messages {
        add_user(None, m.recipient.as_deref());
    }
    for d in &e.devices {
        if let Some(id) = d.mde_device_id.as_deref().filter(|v| !v.is_empty()) {
            let id = id.to_ascii_lowercase();
            if !s.devices.contains(&id) && s.devices.len() < MAX_DEVICES {
                s.devices.push(id);
            }
        }
    }
    for f in &e.files {
        let hash = f.sha256.as_deref().filter(|h| h.len() == 64).or(f.sha1.as_deref().filter(|h| h.len() == 40));
        if let Some(h) = hash.filter(|h| h.chars().all(|c| c.is_ascii_hexdigit())) {
            let h = h.to_ascii_lowercase();
            if !s.files.contains(&h) && s.files.len() < MAX_FILES {
                s.files.push(h);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::domain::entities::{Device, File, Message, User};
    use crate::domain::processing::context::subjects::*;

    #[test]
    fn subjects_are_each_user_device_and_file_once_and_capped() {
        let id = "86462606-FDE0-4fc4-9e0c-a20eb73e54c6";
        let e = Entities {
            users: vec![
                User { aad_user_id: Some(id.into()), ..User::default() },
                User { upn: Some("AlexW@contoso.com".into()), aad_user_id: Some(id.into()), ..User::default() },
                // On-premises only: nothing to look it up by.
                User { account_name: Some("svc-backup".into()), sid: Some("S-1-5-21-1".into()), ..User::default() },
            ],
            mailboxes: vec!["alexw@contoso.com".into()],
            messages: (0..9).map(|i| Message { recipient: Some(format!("r{i}@contoso.com")), ..Message::default() }).collect(),
            devices: vec![Device { mde_device_id: Some("ABC".into()), ..Device::default() }, Device::default()],
            files: vec![
                File { sha1: Some("a".repeat(40)), sha256: Some("B".repeat(64)), ..File::default() },
                File { sha1: Some("c".repeat(40)), ..File::default() },
                File { sha256: Some("not a hash".into()), ..File::default() },
            ],
            ..Entities::default()
        };
        let s = subjects(&e);
        assert_eq!(s.users[0], UserSubject { id: Some(id.to_ascii_lowercase()), upn: Some("alexw@contoso.com".into()) });
        assert_eq!(s.users.len(), MAX_USERS, "the same user once, then recipients up to the cap");
        assert_eq!(s.users[1].key(), "r0@contoso.com");
        assert_eq!(s.devices, vec!["abc"]);
        assert_eq!(s.files, vec!["b".repeat(64), "c".repeat(40)]);
    }
}
