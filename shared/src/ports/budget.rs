//! The requests a tenant's APIs allow, shared by every function instance that calls on the
//! tenant's behalf, and the slots of requests in flight at once.

use std::time::Duration;

use crate::domain::budget::Rate;
use crate::domain::permissions::Api;

/// Which budget a request counts against: a tenant's API, per app where Microsoft counts per app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    pub tenant_id: String,
    /// Some when the limit is per app per tenant (Graph), None when per tenant (Cloud Apps).
    pub client_id: Option<String>,
    pub api: Api,
    /// The resource a limit is kept per, under the app: a mailbox for Outlook's limits.
    pub scope: Option<String>,
}

/// The requests a tenant's API allows, shared by every function instance that calls on its
/// behalf (DynamoDB in AWS: pollers on many instances share one budget per tenant).
///
/// Contract: `admit` returns once one request may go under `rate`, having waited as long as the
/// budget says, and tells how long that was; requests admitted for one key never exceed the
/// rate in any window. A budget whose store fails still paces (within this instance) and never
/// fails the call: Microsoft's 429 stays the backstop.
pub trait RequestBudget: Send + Sync {
    fn admit<'a>(&'a self, key: &'a BudgetKey, rate: Rate) -> futures_util::future::BoxFuture<'a, Duration>;
    /// Like `admit`, but only when the request may go within `max_wait`: None (and nothing
    /// taken from the budget) when it would have to wait longer.
    fn admit_within<'a>(
        &'a self,
        key: &'a BudgetKey,
        rate: Rate,
        max_wait: Duration,
    ) -> futures_util::future::BoxFuture<'a, Option<Duration>>;
    /// Takes one of `limit` slots of `key` for requests in flight at once (Outlook's 4 per app
    /// per mailbox), across every instance that shares the budget, waiting at most `max_wait`;
    /// None when no slot freed up in time (nothing held). The slot is held until the [`Hold`]
    /// is released or dropped; a holder that vanishes (a frozen or crashed instance) loses its
    /// slot when `lease` ends. A store that fails holds within this instance.
    fn hold<'a>(
        &'a self,
        key: &'a BudgetKey,
        limit: u32,
        lease: Duration,
        max_wait: Duration,
    ) -> futures_util::future::BoxFuture<'a, Option<Hold>>;
}

/// How a shared slot is given back: a write to the store, awaited or left to run.
pub type Release = Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// A slot among a key's concurrent requests ([`RequestBudget::hold`]). [`Hold::release`] gives it
/// back before returning; a hold dropped instead (a caller's future cancelled at its deadline)
/// gives it back in the background, so a lookup that timed out does not keep its slot until the
/// lease ends.
#[must_use = "the slot is held until this is released or dropped"]
pub struct Hold {
    shared: Option<Release>,
    /// This instance's slot, kept until the shared one is given back: a waiter here goes
    /// for the shared slot only once it is free.
    local: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Hold {
    pub fn new(local: Option<tokio::sync::OwnedSemaphorePermit>, shared: Option<Release>) -> Self {
        Hold { shared, local }
    }

    /// Gives the slot back, the shared one first. The write runs as its own task, so a caller
    /// cancelled while waiting for it (a lookup at its deadline) still gives the slot back.
    pub async fn release(mut self) {
        let (shared, local) = (self.shared.take(), self.local.take());
        if let Some(release) = shared {
            let giving = tokio::spawn(async move {
                release().await;
                drop(local);
            });
            let _ = giving.await;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(release) = self.shared.take() {
            let local = self.local.take();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    release().await;
                    drop(local);
                });
            }
        }
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("shared", &self.shared.is_some()).field("local", &self.local.is_some()).finish()
    }
}
