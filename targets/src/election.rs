//! The candidate's side of an election client, shared by every target whose clients campaign
//! (memory, etcd, ZooKeeper): what the client remembers between operations (the epoch it
//! leads), and the mapping of the contract in [`faultline_core::election`] onto a target's
//! few primitives ([`ElectionService`]).
//!
//! Design decision: as for locks ([`crate::lock`]), the targets differ only in how they elect,
//! answer a leader query and resign; when a client believes it leads is written once here.

use std::time::Duration;

use faultline_core::election::{
    candidate_name, election_name, observation, ElectionSpec, CAMPAIGN, LEADER, RESIGN,
};
use faultline_core::{BoxFuture, Completion, Invocation};

/// What a campaign's one attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Won {
    /// Elected for this epoch.
    Elected(i64),
    /// Another leads (the attempt left nothing behind).
    NotElected,
}

/// A target's election primitives.
///
/// # Correctness
/// - `campaign` makes `me` the leader only when no one else leads, for a new epoch greater
///   than every epoch before it, bound to `lease` where the target has leases. `Err` is the
///   completion to record (`Info` when the candidacy may have won or may still win).
/// - `leader` answers `Ok({"epoch", "leader"})` or `Ok(null)`; a failure is `Fail` (a read).
/// - `resign` gives up `me`'s leadership of `epoch` only (`Fail("not-leader")` when it had gone).
pub trait ElectionService: Send {
    fn campaign<'a>(
        &'a mut self,
        election: &'a str,
        me: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Won, Completion>>;
    fn leader<'a>(&'a mut self, election: &'a str) -> BoxFuture<'a, Completion>;
    fn resign<'a>(
        &'a mut self,
        election: &'a str,
        me: &'a str,
        epoch: i64,
    ) -> BoxFuture<'a, Completion>;
}

/// One client's election state: the epoch it leads, if any.
#[derive(Debug, Default)]
pub struct Candidate {
    pub epoch: Option<i64>,
}

impl Candidate {
    /// Performs one election operation through `service`.
    pub async fn invoke(
        &mut self,
        service: &mut dyn ElectionService,
        spec: &ElectionSpec,
        op: &Invocation,
    ) -> Completion {
        let election = election_name(op.key.as_ref());
        let me = candidate_name(op.process);
        match op.f.as_str() {
            CAMPAIGN => {
                if self.epoch.is_some() {
                    return Completion::fail("already-leading");
                }
                let lease = Duration::from_millis(spec.lease_ms);
                match service.campaign(&election, &me, lease).await {
                    Ok(Won::Elected(epoch)) => {
                        self.epoch = Some(epoch);
                        Completion::Ok(observation(epoch, &me))
                    }
                    Ok(Won::NotElected) => Completion::fail("not-elected"),
                    Err(completion) => completion,
                }
            }
            LEADER => service.leader(&election).await,
            RESIGN => match self.epoch.take() {
                None => Completion::fail("not-leader"),
                Some(epoch) => service.resign(&election, &me, epoch).await,
            },
            other => Completion::fail(format!("unsupported: {other} in the election workload")),
        }
    }
}
