//! The adapters a use case runs on, named once: `Poller<P>` rather than six type parameters
//! repeated on every struct, impl and handler. Production names [`crate::adapters::aws::Aws`];
//! tests and the local program pick adapters per port with [`PollWith`], [`JobsWith`] and
//! [`ProcessWith`].

use std::marker::PhantomData;

use super::evidence::{ArtifactUploads, EvidencePorts, NoEvidence};
use super::{AlertQueue, ArtifactStore, Clock, CursorStore, DedupStore, GraphApi, IntegrationSource, ScheduleStore, SecretSource};

/// What polling one integration's source needs.
pub trait PollPorts: Send + Sync + 'static {
    type Graph: GraphApi;
    type Cursors: CursorStore;
    /// The intake queue.
    type Queue: AlertQueue;
    type Artifacts: ArtifactStore;
    type Secrets: SecretSource;
    type Clock: Clock;
}

/// What running poll jobs and dispatching them needs on top of polling.
pub trait JobPorts: PollPorts {
    type Integrations: IntegrationSource;
    type Schedule: ScheduleStore;
    /// The poll-jobs queue (continuations go back on it).
    type Jobs: AlertQueue;
}

/// What processing intake messages needs.
pub trait ProcessPorts: Send + Sync + 'static {
    type Dedup: DedupStore;
    /// The output queue.
    type Output: AlertQueue;
    type Artifacts: ArtifactStore + ArtifactUploads;
    type Clock: Clock;
    /// Evidence retrieval's own ports ([`NoEvidence`] where a processor only renders).
    type Evidence: EvidencePorts;
}

/// Poll ports chosen one by one.
pub struct PollWith<G, C, Q, A, S, K>(PhantomData<(G, C, Q, A, S, K)>);

impl<G, C, Q, A, S, K> PollPorts for PollWith<G, C, Q, A, S, K>
where
    G: GraphApi + 'static,
    C: CursorStore + 'static,
    Q: AlertQueue + 'static,
    A: ArtifactStore + 'static,
    S: SecretSource + 'static,
    K: Clock + 'static,
{
    type Graph = G;
    type Cursors = C;
    type Queue = Q;
    type Artifacts = A;
    type Secrets = S;
    type Clock = K;
}

/// Job ports: the poll ports of `P` with these three.
pub struct JobsWith<P, I, D, J>(PhantomData<(P, I, D, J)>);

impl<P: PollPorts, I: Send + Sync + 'static, D: Send + Sync + 'static, J: Send + Sync + 'static> PollPorts for JobsWith<P, I, D, J> {
    type Graph = P::Graph;
    type Cursors = P::Cursors;
    type Queue = P::Queue;
    type Artifacts = P::Artifacts;
    type Secrets = P::Secrets;
    type Clock = P::Clock;
}

impl<P, I, D, J> JobPorts for JobsWith<P, I, D, J>
where
    P: PollPorts,
    I: IntegrationSource + 'static,
    D: ScheduleStore + 'static,
    J: AlertQueue + 'static,
{
    type Integrations = I;
    type Schedule = D;
    type Jobs = J;
}

/// Process ports chosen one by one.
pub struct ProcessWith<D, Q, A, K, E = NoEvidence>(PhantomData<(D, Q, A, K, E)>);

impl<D, Q, A, K, E> ProcessPorts for ProcessWith<D, Q, A, K, E>
where
    D: DedupStore + 'static,
    Q: AlertQueue + 'static,
    A: ArtifactStore + ArtifactUploads + 'static,
    K: Clock + 'static,
    E: EvidencePorts,
{
    type Dedup = D;
    type Output = Q;
    type Artifacts = A;
    type Clock = K;
    type Evidence = E;
}
