//! [`Faults`]: applies actions to a db's nodes and network, runs the schedule, and heals.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use faultline_core::future::join_all;
use faultline_core::{BoxFuture, Db, HarnessError, Invocation, Nemesis, Net, Node, Test};
use faultline_workloads::interpreter::{NemesisRecorder, Stop};

use crate::action::{Action, HealReport, Nodes, Partition, Strobe, Target, Targets, Topology};
use crate::partition;
use crate::schedule::{Election, Kind, Plan, RestartVoterRoles, Schedule, Timing};
use faultline_core::{LinkDelays, LogProbe, LogStatus};

/// Starting a killed node, as an action.
fn start_node(node: &str) -> Action {
    Action::Start(Nodes {
        nodes: vec![node.to_string()],
    })
}

/// What a `figure-8` step waits for in a node's log status.
type StatusTest = Box<dyn Fn(&LogStatus) -> bool + Send>;

/// How long the nemesis waits for the nodes to say who leads before it treats the leader as
/// unknown (a paused or cut-off node may not answer at all).
pub const PRIMARY_TIMEOUT_MS: u64 = 5_000;

/// The fault injector of one run: a db's nodes, their network, and the faults asked for.
pub struct Faults {
    kinds: Vec<Kind>,
    db: Arc<dyn Db>,
    nodes: Vec<Node>,
    /// The hosts' network, when given; else the db's own ([`Db::as_net`]).
    net: Option<Arc<dyn Net>>,
    timing: Timing,
    /// What may be in force right now. Each is marked *before* the fault is applied, so a
    /// future dropped halfway (panic, abort) leaves a superset, and teardown heals it.
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
    skewed: BTreeSet<String>,
    net_faulted: bool,
    current: Arc<Mutex<Option<String>>>,
}

pub(crate) fn nemesis_error(f: &str, why: impl Into<String>) -> HarnessError {
    HarnessError::Nemesis {
        f: f.to_string(),
        why: why.into(),
    }
}

/// Resolves when `stop` is raised; never without one.
async fn stopped(stop: Option<&Stop>) {
    match stop {
        Some(stop) => stop.stopped().await,
        None => std::future::pending().await,
    }
}

impl Faults {
    pub(crate) fn new(
        kinds: Vec<Kind>,
        db: Arc<dyn Db>,
        nodes: Vec<Node>,
        net: Option<Arc<dyn Net>>,
    ) -> Faults {
        Faults {
            kinds,
            db,
            nodes,
            net,
            timing: Timing::default(),
            killed: BTreeSet::new(),
            paused: BTreeSet::new(),
            skewed: BTreeSet::new(),
            net_faulted: false,
            current: Arc::default(),
        }
    }

    /// The same nemesis with another pace (gaps, fault lengths, recovery time).
    pub fn with_timing(mut self, timing: Timing) -> Faults {
        self.timing = timing;
        self
    }

    /// The fault kinds this nemesis injects (empty for `none`).
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The fault in force, for a progress line: `Some("partition majorities-ring")`,
    /// `Some("kill n2,n4")`, `Some("heal")` during the final heal, `None` when nothing is.
    /// The schedule updates it; readers lock it briefly.
    pub fn current(&self) -> Arc<Mutex<Option<String>>> {
        self.current.clone()
    }

    fn set_current(&self, what: Option<String>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    fn net(&self) -> Option<&dyn Net> {
        self.net.as_deref().or_else(|| self.db.as_net())
    }

    /// Whether the network can add latency: the db's own network (the local fault proxy)
    /// can; the hosts' network (iptables, on a kernel without netem) cannot.
    fn net_delays(&self) -> bool {
        self.net.is_none() && self.db.as_net().is_some()
    }

    /// Every node's log status, in node order (`None`: it did not answer).
    async fn log_statuses(
        &self,
        probe: &dyn LogProbe,
        test: &Test,
    ) -> Result<Vec<Option<LogStatus>>, HarnessError> {
        let mut statuses = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            statuses.push(probe.log_status(test, node).await?);
        }
        Ok(statuses)
    }

    fn node(&self, f: &str, name: &str) -> Result<&Node, HarnessError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| nemesis_error(f, format!("no node {name:?} in this test")))
    }

    /// Does `action` (not its hold: see [`Faults::hold`]) and returns what to record.
    pub(crate) async fn apply(
        &mut self,
        test: &Test,
        action: &Action,
    ) -> Result<Value, HarnessError> {
        let f = action.f();
        let missing = |what: &str| nemesis_error(f, format!("the target has no {what}"));
        // Names are checked before anything is done, so a bad invocation changes nothing.
        let names: Vec<&String> = match action {
            Action::Kill(t) | Action::Pause(t) => t.nodes.iter().collect(),
            Action::Start(n) | Action::Resume(n) | Action::ResetClock(n) => {
                n.nodes.iter().collect()
            }
            Action::BumpClock(o) => o.offsets_ms.keys().collect(),
            Action::StrobeClock(s) => s.offsets_ms.keys().collect(),
            Action::StartPartition(p) => p
                .grudge
                .iter()
                .flat_map(|(k, v)| v.iter().chain([k]))
                .collect(),
            _ => Vec::new(),
        };
        for name in names {
            self.node(f, name)?;
        }
        // Owned handles, so that `self` stays free to mark what is in force.
        let db = self.db.clone();
        let given_net = self.net.clone();
        let net = given_net.as_deref().or_else(|| db.as_net());
        match action {
            Action::StartPartition(Partition { grudge, topology }) => {
                let net = net.ok_or_else(|| missing("network to cut"))?;
                self.net_faulted = true;
                net.partition(test, grudge).await?;
                // The figure-8 stages set their own link delays (none: removed).
                if let Topology::Figure8 { delays_ms, .. } = topology {
                    net.delay_links(test, delays_ms).await?;
                }
            }
            Action::StartLoss(impairment) => {
                if !(0.0..=1.0).contains(&impairment.loss) {
                    return Err(nemesis_error(
                        f,
                        format!("loss {} is not a probability", impairment.loss),
                    ));
                }
                let net = net.ok_or_else(|| missing("network to impair"))?;
                self.net_faulted = true;
                net.impair(test, impairment).await?;
            }
            Action::StopPartition(_) | Action::StopLoss(_) => {
                let net = net.ok_or_else(|| missing("network to heal"))?;
                net.heal(test).await?;
                self.net_faulted = false;
            }
            Action::Kill(targets) => {
                let kill = db.as_kill().ok_or_else(|| missing("kill capability"))?;
                for name in &targets.nodes {
                    self.killed.insert(name.clone());
                    self.paused.remove(name);
                    kill.kill(test, self.node(f, name)?).await?;
                }
            }
            Action::Start(Nodes { nodes }) => {
                let kill = db.as_kill().ok_or_else(|| missing("kill capability"))?;
                for name in nodes {
                    kill.start(test, self.node(f, name)?).await?;
                    self.killed.remove(name);
                }
            }
            Action::Pause(targets) => {
                let pause = db.as_pause().ok_or_else(|| missing("pause capability"))?;
                for name in &targets.nodes {
                    self.paused.insert(name.clone());
                    pause.pause(test, self.node(f, name)?).await?;
                }
            }
            Action::Resume(Nodes { nodes }) => {
                let pause = db.as_pause().ok_or_else(|| missing("pause capability"))?;
                for name in nodes {
                    pause.resume(test, self.node(f, name)?).await?;
                    self.paused.remove(name);
                }
            }
            Action::BumpClock(crate::action::Offsets { offsets_ms })
            | Action::StrobeClock(Strobe { offsets_ms, .. }) => {
                let clock = db.as_clock().ok_or_else(|| missing("clock to move"))?;
                for (name, offset) in offsets_ms {
                    self.skewed.insert(name.clone());
                    clock.set_offset(test, self.node(f, name)?, *offset).await?;
                }
            }
            Action::ResetClock(Nodes { nodes }) => {
                let clock = db.as_clock().ok_or_else(|| missing("clock to move"))?;
                for name in nodes {
                    clock.reset(test, self.node(f, name)?).await?;
                    self.skewed.remove(name);
                }
            }
            Action::Heal => {
                let (report, result) = self.heal(test).await;
                result?;
                return Ok(serde_json::to_value(report).expect("plain data"));
            }
        }
        tracing::info!("nemesis {f} {}", action.value());
        Ok(action.value())
    }

    /// Holds `action` until `deadline` or the stop: a strobe flips its clocks meanwhile,
    /// anything else just waits.
    pub(crate) async fn hold(
        &self,
        test: &Test,
        action: &Action,
        deadline: Instant,
        stop: Option<&Stop>,
    ) -> Result<(), HarnessError> {
        let Action::StrobeClock(strobe) = action else {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stopped(stop) => {}
            }
            return Ok(());
        };
        let clock = self
            .db
            .as_clock()
            .ok_or_else(|| nemesis_error(action.f(), "the target has no clock to move"))?;
        let period = Duration::from_millis(strobe.period_ms.max(1));
        // `apply` set the offsets: the first half-period is "on".
        let mut on = true;
        let mut flips = 0u64;
        loop {
            let next = (Instant::now() + period).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stopped(stop) => break,
            }
            if next >= deadline {
                break;
            }
            on = !on;
            flips += 1;
            for (name, offset) in &strobe.offsets_ms {
                let node = self.node(action.f(), name)?;
                clock
                    .set_offset(test, node, if on { *offset } else { 0 })
                    .await?;
            }
        }
        tracing::debug!("strobe: {flips} flips");
        Ok(())
    }

    /// Heals everything this nemesis may have done, going on past errors; returns what it
    /// did and the first error. The network is healed first, so restarted nodes can talk.
    pub(crate) async fn heal(&mut self, test: &Test) -> (HealReport, Result<(), HarnessError>) {
        let mut report = HealReport::default();
        let mut first_error: Option<HarnessError> = None;
        let asked = |kind: Kind| self.kinds.contains(&kind);
        let heal_net = asked(Kind::Partition) || asked(Kind::Loss) || self.net_faulted;
        if heal_net {
            if let Some(net) = self.net() {
                match net.heal(test).await {
                    Ok(()) => report.net = true,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if report.net {
                self.net_faulted = false;
            }
        }
        // Each kind on every node at once: a slow or unreachable node does not hold up the
        // others' heal (nor a bounded teardown end before the others are healed).
        if asked(Kind::Clock) || !self.skewed.is_empty() {
            if let Some(clock) = self.db.as_clock() {
                let resets = self.nodes.iter().map(|node| clock.reset(test, node));
                for (node, result) in self.nodes.iter().zip(join_all(resets).await) {
                    match result {
                        Ok(()) => {
                            self.skewed.remove(&node.name);
                            report.clocks_reset.push(node.name.clone());
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if asked(Kind::Pause) || !self.paused.is_empty() {
            if let Some(pause) = self.db.as_pause() {
                // Every node, not only those marked: resuming a running process is harmless.
                let resumes = self.nodes.iter().map(|node| pause.resume(test, node));
                for (node, result) in self.nodes.iter().zip(join_all(resumes).await) {
                    match result {
                        Ok(()) => {
                            self.paused.remove(&node.name);
                            report.resumed.push(node.name.clone());
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if let Some(kill) = self.db.as_kill() {
            let killed: Vec<&Node> = self
                .nodes
                .iter()
                .filter(|node| self.killed.contains(&node.name))
                .collect();
            let starts = killed.iter().map(|node| kill.start(test, node));
            for (node, result) in killed.iter().zip(join_all(starts).await) {
                match result {
                    Ok(()) => {
                        self.killed.remove(&node.name);
                        report.started.push(node.name.clone());
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        (report, first_error.map_or(Ok(()), Err))
    }

    /// The plan as an action: for `isolate-leader`, asks the db who leads now.
    pub(crate) async fn resolve(&self, test: &Test, plan: Plan) -> Result<Action, HarnessError> {
        let (fallback, pick) = match plan {
            Plan::Apply(Action::Kill(targets)) if targets.target == Target::Leader => {
                return Ok(Action::Kill(self.leader_targets(test, targets).await?));
            }
            Plan::Apply(Action::Pause(targets)) if targets.target == Target::Leader => {
                return Ok(Action::Pause(self.leader_targets(test, targets).await?));
            }
            Plan::Apply(action) => return Ok(action),
            Plan::IsolateLeader { fallback, pick } => (fallback, pick),
            Plan::Election(election) => {
                unreachable!("an election fault is a sequence, run by run_election: {election:?}")
            }
        };
        let leader = self.leader(test, pick).await?;
        if leader.is_none() {
            tracing::warn!("no leader known; isolating {fallback}, drawn at random, instead");
        }
        let isolated = leader.clone().unwrap_or(fallback);
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let grudge = partition::isolate(&names, &isolated);
        Ok(Action::StartPartition(Partition {
            topology: Topology::IsolateLeader { isolated, leader },
            grudge,
        }))
    }

    /// A kill or pause of the leader: the drawn stand-in replaced by the node that leads now.
    async fn leader_targets(&self, test: &Test, drawn: Targets) -> Result<Targets, HarnessError> {
        match self.leader(test, 0).await? {
            Some(leader) => Ok(Targets {
                target: Target::Leader,
                nodes: vec![leader],
            }),
            None => {
                tracing::warn!(
                    "no leader known; taking {:?}, drawn at random, instead",
                    drawn.nodes
                );
                Ok(drawn)
            }
        }
    }

    /// The node that leads now, if any says so: with several claimants (in name order), the
    /// one at `pick` modulo their number.
    async fn leader(&self, test: &Test, pick: u64) -> Result<Option<String>, HarnessError> {
        let mut leaders = match self.db.as_primary() {
            None => Vec::new(),
            Some(primary) => {
                let limit = Duration::from_millis(PRIMARY_TIMEOUT_MS);
                match tokio::time::timeout(limit, primary.primaries(test, &self.nodes)).await {
                    Ok(answer) => answer?,
                    Err(_) => {
                        tracing::warn!("no node said who leads within {PRIMARY_TIMEOUT_MS} ms");
                        Vec::new()
                    }
                }
            }
        };
        leaders.retain(|leader| self.nodes.iter().any(|n| n.name == *leader));
        leaders.sort();
        leaders.dedup();
        Ok((!leaders.is_empty()).then(|| leaders[(pick % leaders.len() as u64) as usize].clone()))
    }

    /// Applies `action`, then records it (after it took effect: a kill recorded at time t
    /// means the node was down from t on).
    async fn apply_recorded(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
        action: &Action,
    ) -> Result<(), HarnessError> {
        let value = self.apply(test, action).await?;
        if !recorder.record(action.f(), value).await {
            return Err(nemesis_error(action.f(), "the history writer stopped"));
        }
        Ok(())
    }

    /// Runs one `election` fault: its actions in order, each recorded once it took effect,
    /// then their undos in reverse order. `phase_end` (the end of the main phase) and a stop
    /// cut every hold short, and the undos still run.
    async fn run_election(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
        stop: &Stop,
        election: Election,
        phase_end: Instant,
    ) -> Result<(), HarnessError> {
        let until = |ms: u64| (Instant::now() + Duration::from_millis(ms)).min(phase_end);
        match election {
            Election::PauseIsolatedLeader {
                fallback,
                pick,
                pause_ms,
                isolated_ms,
            } => {
                let isolate = self
                    .resolve(test, Plan::IsolateLeader { fallback, pick })
                    .await?;
                let Action::StartPartition(Partition {
                    topology: Topology::IsolateLeader { isolated, .. },
                    ..
                }) = &isolate
                else {
                    unreachable!("resolve turns IsolateLeader into an isolate-leader partition")
                };
                let pause = Action::Pause(Targets {
                    target: Target::Leader,
                    nodes: vec![isolated.clone()],
                });
                self.set_current(Some(format!("election pause-isolated-leader {isolated}")));
                // Cut off first, then paused right after: the node has no time to notice
                // that it lost its quorum (check-quorum takes an election timeout).
                self.apply_recorded(test, recorder, &isolate).await?;
                self.apply_recorded(test, recorder, &pause).await?;
                self.hold(test, &pause, until(pause_ms), Some(stop)).await?;
                let resume = pause.undo().expect("a pause has an undo");
                self.apply_recorded(test, recorder, &resume).await?;
                self.set_current(Some(format!(
                    "election pause-isolated-leader {isolated} resumed"
                )));
                // Resumed but still cut off: whatever it still believes as leader, it can
                // only answer its own clients from it.
                self.hold(test, &isolate, until(isolated_ms), Some(stop))
                    .await?;
                let heal = isolate.undo().expect("a partition has an undo");
                self.apply_recorded(test, recorder, &heal).await
            }
            Election::RestartVoter {
                order,
                pick,
                hold_ms,
            } => {
                self.run_restart_voter(test, recorder, stop, order, pick, hold_ms, phase_end)
                    .await
            }
            Election::Figure8 { order, pick } => {
                self.run_figure_8(test, recorder, stop, order, pick, phase_end)
                    .await
            }
        }
    }

    /// Runs [`Election::Figure8`]. Each stage is recorded as it takes effect; a step that
    /// does not come within [`figure_8_ms::STEP`] (or the end of the main phase, or `stop`)
    /// ends the fault early. On every way out the paused nodes are resumed and the network
    /// healed (link delays included).
    async fn run_figure_8(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
        stop: &Stop,
        order: Vec<String>,
        pick: u64,
        phase_end: Instant,
    ) -> Result<(), HarnessError> {
        let outcome = self
            .figure_8_steps(test, recorder, stop, order, pick, phase_end)
            .await;
        let paused: Vec<String> = self.paused.iter().cloned().collect();
        if !paused.is_empty() {
            self.apply_recorded(test, recorder, &Action::Resume(Nodes { nodes: paused }))
                .await?;
        }
        let heal = Action::StopPartition(Topology::Figure8 {
            stage: "heal".to_string(),
            delays_ms: LinkDelays::new(),
        });
        self.apply_recorded(test, recorder, &heal).await?;
        match outcome? {
            Ok(()) => tracing::info!("figure-8: every step taken"),
            Err(why) => {
                tracing::info!("figure-8: ended early: {why}");
                self.set_current(Some(format!("figure-8 ended early: {why}")));
            }
        }
        Ok(())
    }

    /// The steps of [`Election::Figure8`]; `Ok(Err(why))` when a step did not come.
    async fn figure_8_steps(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
        stop: &Stop,
        order: Vec<String>,
        pick: u64,
        phase_end: Instant,
    ) -> Result<Result<(), String>, HarnessError> {
        use crate::schedule::figure_8_ms as ms;
        let db = self.db.clone();
        let probe = db
            .as_log_probe()
            .ok_or_else(|| nemesis_error("figure-8", "the target reports no log status"))?;
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        // Start from a cluster whose followers have caught up (an earlier fault leaves logs
        // to repair, one entry per message): else the roles below meet logs far behind.
        self.set_current(Some("figure-8: waiting for the logs to converge".into()));
        let converge_by = (Instant::now() + Duration::from_millis(ms::CONVERGE)).min(phase_end);
        loop {
            let logs: Vec<(u64, u64)> = self
                .log_statuses(probe, test)
                .await?
                .into_iter()
                .flatten()
                .map(|status| (status.last_term, status.last_index))
                .collect();
            // Every log holds an entry of the newest term (the leader's no-op at least), so
            // no follower is left with a suffix to repair, and they are close to each other.
            let newest = logs.iter().map(|(term, _)| *term).max().unwrap_or(0);
            let lasts: Vec<u64> = logs.iter().map(|(_, last)| *last).collect();
            let spread = lasts
                .iter()
                .max()
                .zip(lasts.iter().min())
                .map(|(x, n)| x - n);
            if logs.len() == self.nodes.len()
                && logs.iter().all(|(term, _)| *term == newest)
                && spread.is_some_and(|s| s <= ms::CONVERGED)
            {
                break;
            }
            if stop.is_stopped() || Instant::now() >= converge_by {
                return Ok(Err(format!(
                    "the logs did not converge: (last term, last index) {logs:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(ms::POLL * 5)).await;
        }
        let Some(a) = self.leader(test, pick).await? else {
            return Ok(Err("no node leads".into()));
        };
        let others: Vec<String> = order.into_iter().filter(|n| *n != a).collect();
        let b = others[0].clone();
        let stage = |stage: &str,
                     links: &[(&String, &String)],
                     delays: &[(&String, &String)],
                     delay: u64| {
            let mut delays_ms = LinkDelays::new();
            for (from, to) in delays {
                delays_ms
                    .entry(from.to_string())
                    .or_default()
                    .insert(to.to_string(), delay);
            }
            Action::StartPartition(Partition {
                topology: Topology::Figure8 {
                    stage: stage.to_string(),
                    delays_ms,
                },
                grudge: RestartVoterRoles::only(&names, links),
            })
        };
        let role = |node: &String| Targets {
            target: Target::Role,
            nodes: vec![node.clone()],
        };
        let resume = |node: &String| {
            Action::Resume(Nodes {
                nodes: vec![node.clone()],
            })
        };
        // Waits up to `wait_ms` until `node` reports a status that `done` accepts; its last
        // answer, or why not.
        let all_nodes = self.nodes.clone();
        let awaited = |node: String, what: &'static str, wait_ms: u64, done: StatusTest| {
            let all_nodes = &all_nodes;
            async move {
                let deadline = (Instant::now() + Duration::from_millis(wait_ms)).min(phase_end);
                let node_ref = all_nodes
                    .iter()
                    .find(|n| n.name == node)
                    .ok_or_else(|| nemesis_error("figure-8", format!("no node {node}")))?;
                loop {
                    if let Some(status) = probe.log_status(test, node_ref).await? {
                        if done(&status) {
                            return Ok(Ok(status));
                        }
                    }
                    if stop.is_stopped() || Instant::now() >= deadline {
                        return Ok(Err(format!("{node} did not {what}")));
                    }
                    tokio::time::sleep(Duration::from_millis(ms::POLL)).await;
                }
            }
        };
        self.set_current(Some(format!("figure-8: leader {a}, its partner {b}")));
        // Every follower at the leader's last entry, if that comes soon: then the entries A
        // appends from now on came from its own clients and B's, the ones still connected to
        // it when it answers (a write forwarded by C, D or E would be answered on a link that
        // the next step cuts).
        let caught_up_by = Instant::now() + Duration::from_millis(ms::CATCH_UP);
        while Instant::now() < caught_up_by && !stop.is_stopped() {
            let statuses = self.log_statuses(probe, test).await?;
            let lasts: BTreeSet<Option<u64>> =
                statuses.iter().map(|s| s.map(|s| s.last_index)).collect();
            if lasts.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(ms::POLL)).await;
        }
        // 1-2. A and B alone, then A paused with its writes pending.
        self.apply_recorded(test, recorder, &stage("pair", &[(&a, &b)], &[], 0))
            .await?;
        let Some(paired_at) = probe
            .log_status(test, self.node("figure-8", &a)?)
            .await?
            .map(|s| s.last_index)
        else {
            return Ok(Err(format!("{a} did not answer")));
        };
        tokio::time::sleep(Duration::from_millis(ms::PAIR)).await;
        self.apply_recorded(test, recorder, &Action::Pause(role(&a)))
            .await?;
        let mut logs = Vec::new();
        for node in &others {
            let status = probe.log_status(test, self.node("figure-8", node)?).await?;
            logs.push((node.clone(), status));
        }
        let Some(b_log) = logs[0].1 else {
            return Ok(Err(format!("{b} did not answer")));
        };
        // 3. E: the longest log of the other three, so that both others vote for it.
        let mut rest: Vec<(String, LogStatus)> = Vec::new();
        for (node, status) in logs.into_iter().skip(1) {
            match status {
                Some(status) => rest.push((node, status)),
                None => return Ok(Err(format!("{node} did not answer"))),
            }
        }
        rest.sort_by_key(|(_, s)| (s.last_term, s.last_index));
        let (e, e_before) = rest.pop().expect("three others");
        let (c, d) = (rest[1].0.clone(), rest[0].0.clone());
        // The first entry E's log will not share with A's: E's no-op goes there. A's entry
        // there must be one A appended after the pair, so that its client hears the answer.
        let conflict_at = e_before.last_index + 1;
        if e_before.last_index < paired_at {
            return Ok(Err(format!(
                "{e}'s log ends at {}, before the {paired_at} entries {a} held when it was cut \
                 off from it",
                e_before.last_index
            )));
        }
        if b_log.last_index < conflict_at {
            return Ok(Err(format!(
                "{a} took no write while only {b} heard it (its log ends at {})",
                b_log.last_index
            )));
        }
        tracing::info!(
            %a, %b, %c, %d, %e,
            a_last = b_log.last_index,
            e_last = e_before.last_index,
            "figure-8: roles"
        );
        self.set_current(Some(format!("figure-8: {a} paused, {e} campaigns")));
        self.apply_recorded(
            test,
            recorder,
            &stage(
                "elect",
                &[(&e, &c), (&e, &d)],
                &[(&e, &c), (&e, &d)],
                ms::DELAY,
            ),
        )
        .await?;
        let term_a = b_log.term;
        let e_led = match awaited(
            e.clone(),
            "win an election",
            ms::STEP,
            Box::new(move |s| s.leader && s.term > term_a),
        )
        .await?
        {
            Ok(status) => status,
            Err(why) => return Ok(Err(why)),
        };
        // E's first AppendEntries is still in the delayed link: cut it off, then pause it.
        self.apply_recorded(
            test,
            recorder,
            &stage(
                "reelect",
                &[(&a, &b), (&a, &c)],
                &[(&a, &c)],
                ms::SHIP_DELAY,
            ),
        )
        .await?;
        self.apply_recorded(test, recorder, &Action::Pause(role(&e)))
            .await?;
        // 4. A again, shipping one entry per message to C.
        self.set_current(Some(format!("figure-8: {a} campaigns again")));
        self.apply_recorded(test, recorder, &resume(&a)).await?;
        let term_e = e_led.term;
        if let Err(why) = awaited(
            a.clone(),
            "win again",
            ms::STEP,
            Box::new(move |s| s.leader && s.term > term_e),
        )
        .await?
        {
            return Ok(Err(why));
        }
        // C gets A's old entries up to the first that conflicts with E's log, and no
        // further. A message carries the commit index its sender knew before the
        // acknowledgement of its own entry, so C then knows nothing committed past the
        // entries E also has, and E can overwrite it. A leader that wrongly commits that
        // entry acknowledges one write, and the cut below stops the news from reaching C.
        // Shipping more would lose more writes but leave C holding committed entries it must
        // not drop: with A and B, three nodes E can never repair, and no majority to read
        // the loss from.
        if let Err(why) = awaited(
            c.clone(),
            "receive the leader's first old entry past the new leader's log",
            ms::STEP,
            Box::new(move |s| s.last_index >= conflict_at),
        )
        .await?
        {
            return Ok(Err(why));
        }
        // C's acknowledgement is on its way back to A (an undelayed link); a leader that
        // commits the entry on it does so now. A's next message to C, with the new commit
        // index, is held `SHIP_DELAY` in the link: cut it off before it is delivered.
        // Either way the cut follows: a correct leader never commits it.
        let _ = awaited(
            a.clone(),
            "commit it",
            ms::ACK,
            Box::new(move |s| s.commit >= conflict_at),
        )
        .await?;
        self.apply_recorded(test, recorder, &stage("cut", &[(&a, &b)], &[], 0))
            .await?;
        tokio::time::sleep(Duration::from_millis(ms::SETTLE)).await;
        // 5. E again, over C and D.
        self.set_current(Some(format!("figure-8: {e} overwrites")));
        self.apply_recorded(
            test,
            recorder,
            &stage("overwrite", &[(&e, &c), (&e, &d)], &[], 0),
        )
        .await?;
        self.apply_recorded(test, recorder, &resume(&e)).await?;
        let term_now = term_e + 1;
        if let Err(why) = awaited(
            e.clone(),
            "win over the old entries",
            ms::STEP,
            Box::new(move |s| s.leader && s.term > term_now),
        )
        .await?
        {
            return Ok(Err(why));
        }
        tokio::time::sleep(Duration::from_millis(ms::SETTLE)).await;
        Ok(Ok(()))
    }

    /// Runs [`Election::RestartVoter`]: its steps in order, each recorded once it took
    /// effect. When the main phase ends or `stop` is raised before the last step, the rest is
    /// skipped and what is in force undone: the voter started if it is down, every paused
    /// node resumed, the network healed.
    #[allow(clippy::too_many_arguments)]
    async fn run_restart_voter(
        &mut self,
        test: &Test,
        recorder: &NemesisRecorder,
        stop: &Stop,
        mut order: Vec<String>,
        pick: u64,
        hold_ms: u64,
        phase_end: Instant,
    ) -> Result<(), HarnessError> {
        use crate::schedule::restart_voter_ms as ms;
        // The leader, when one is known, is the first candidate: the first stage hands its
        // whole log to the second, so both candidates' logs are at least as up to date as
        // anyone's and every grant and vote below is decided by terms and votes alone.
        if let Some(leader) = self.leader(test, pick).await? {
            if let Some(at) = order.iter().position(|n| *n == leader) {
                order.swap(0, at);
            }
        }
        let roles = RestartVoterRoles::from_order(&order);
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let partition = |stage: &str, grudge| {
            Action::StartPartition(Partition {
                topology: Topology::RestartVoter {
                    stage: stage.to_string(),
                    candidates: [roles.first.clone(), roles.second.clone()],
                    voter: roles.voter.clone(),
                },
                grudge,
            })
        };
        let role = |nodes: Vec<String>| Targets {
            target: Target::Role,
            nodes,
        };
        let resume = |nodes: &[&String]| {
            Action::Resume(Nodes {
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
            })
        };
        let (first_late, second_late) = (&roles.first_supporters[0], &roles.second_supporters[0]);
        let steps = vec![
            (
                partition("candidates", roles.candidates_grudge(&names)),
                ms::CANDIDATES,
            ),
            (
                Action::Pause(role(vec![
                    roles.voter.clone(),
                    first_late.clone(),
                    second_late.clone(),
                ])),
                0,
            ),
            (
                partition("campaign", roles.campaign_grudge(&names, true)),
                ms::CAMPAIGN,
            ),
            (
                Action::Pause(role(vec![roles.first.clone(), roles.second.clone()])),
                0,
            ),
            (partition("split", roles.campaign_grudge(&names, false)), 0),
            (resume(&[&roles.voter]), ms::GRANTS),
            (resume(&[&roles.first]), ms::VOTE),
            (Action::Pause(role(vec![roles.first.clone()])), 0),
            (Action::Kill(role(vec![roles.voter.clone()])), 0),
            (start_node(&roles.voter), ms::RESTART),
            (resume(&[&roles.second, second_late]), ms::SECOND_ELECTION),
            (resume(&[&roles.first, first_late]), hold_ms),
        ];
        self.set_current(Some(format!(
            "restart-voter: candidates {} and {}, voter {}",
            roles.first, roles.second, roles.voter
        )));
        let until = |ms: u64| (Instant::now() + Duration::from_millis(ms)).min(phase_end);
        let mut cut_short = false;
        for (action, wait_ms) in &steps {
            self.apply_recorded(test, recorder, action).await?;
            if *wait_ms > 0 {
                self.hold(test, action, until(*wait_ms), Some(stop)).await?;
            }
            if stop.is_stopped() || Instant::now() >= phase_end {
                cut_short = true;
                break;
            }
        }
        if cut_short {
            // Undo what is in force, in the order a restart needs: the voter up, then every
            // node of the fault running.
            if self.killed.contains(&roles.voter) {
                self.apply_recorded(test, recorder, &start_node(&roles.voter))
                    .await?;
            }
            let paused: Vec<String> = order
                .iter()
                .filter(|n| self.paused.contains(*n))
                .cloned()
                .collect();
            if !paused.is_empty() {
                self.apply_recorded(test, recorder, &Action::Resume(Nodes { nodes: paused }))
                    .await?;
            }
        }
        let heal = Action::StopPartition(Topology::RestartVoter {
            stage: "split".to_string(),
            candidates: [roles.first.clone(), roles.second.clone()],
            voter: roles.voter.clone(),
        });
        self.apply_recorded(test, recorder, &heal).await
    }

    /// The fault schedule, seeded from `test.seed_for("nemesis")`: a quiet gap, then one fault
    /// drawn from the mix, held for a while, then undone; again until the main phase ends
    /// (`test.time_limit_ms` on the recorder's clock) or `stop` is raised. At most one fault is
    /// in force at a time. Every fault and undo is recorded as a nemesis event.
    ///
    /// Then, on every path out of the schedule, the final heal (recorded as `heal`) and, unless
    /// `stop` was raised, the recovery wait (`timing.recovery_ms`), so that the final
    /// operations, which wait for this future, meet a healed cluster that had time to recover.
    pub async fn run(
        &mut self,
        test: &Test,
        recorder: NemesisRecorder,
        stop: Stop,
    ) -> Result<(), HarnessError> {
        if self.kinds.is_empty() || self.nodes.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let mut schedule = Schedule::new(
            test.seed_for("nemesis"),
            &self.kinds,
            &names,
            self.net_delays(),
            self.timing.clone(),
        );
        if schedule.kinds().is_empty() {
            tracing::warn!(
                "no fault of {:?} applies to {} node(s); injecting nothing",
                self.kinds,
                names.len()
            );
            return Ok(());
        }
        let end_ns = test.time_limit_ms.saturating_mul(1_000_000);
        // The deadline `ms` from now, cut at the end of the main phase.
        let deadline = |ms: u64| {
            let left_ms = end_ns.saturating_sub(recorder.now_ns()) / 1_000_000;
            Instant::now() + Duration::from_millis(ms.min(left_ms))
        };
        let phase_over = || stop.is_stopped() || recorder.now_ns() >= end_ns;
        let result = async {
            loop {
                let planned = schedule.next_fault();
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline(planned.gap_ms)) => {}
                    _ = stop.stopped() => return Ok(()),
                }
                if phase_over() {
                    return Ok(());
                }
                if let Plan::Election(election) = planned.plan {
                    self.run_election(test, &recorder, &stop, election, deadline(u64::MAX))
                        .await?;
                    self.set_current(None);
                    if phase_over() {
                        return Ok(());
                    }
                    continue;
                }
                let action = self.resolve(test, planned.plan).await?;
                self.set_current(Some(action.describe()));
                self.apply_recorded(test, &recorder, &action).await?;
                // A companion fault goes in after the first and comes out before it.
                let with = match planned.with {
                    Some(plan) => {
                        let with = self.resolve(test, plan).await?;
                        self.set_current(Some(format!(
                            "{} + {}",
                            action.describe(),
                            with.describe()
                        )));
                        self.apply_recorded(test, &recorder, &with).await?;
                        Some(with)
                    }
                    None => None,
                };
                self.hold(test, &action, deadline(planned.hold_ms), Some(&stop))
                    .await?;
                if let Some(undo) = with.as_ref().and_then(Action::undo) {
                    self.apply_recorded(test, &recorder, &undo).await?;
                }
                if let Some(undo) = action.undo() {
                    self.apply_recorded(test, &recorder, &undo).await?;
                }
                self.set_current(None);
                if phase_over() {
                    return Ok(());
                }
            }
        }
        .await;
        // The final heal, on every path out of the schedule: it also undoes a fault left in
        // force by an error above.
        self.set_current(Some("heal".to_string()));
        let (report, healed) = self.heal(test).await;
        self.set_current(None);
        let value = serde_json::to_value(&report).expect("plain data");
        let recorded = if recorder.record(Action::Heal.f(), value).await {
            Ok(())
        } else {
            Err(nemesis_error("heal", "the history writer stopped"))
        };
        let result = result.and(healed).and(recorded);
        if result.is_ok() && !stop.is_stopped() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(self.timing.recovery_ms)) => {}
                _ = stop.stopped() => {}
            }
        }
        result
    }
}

impl Nemesis for Faults {
    /// Heals what an earlier, crashed run may have left (the network, clocks): the run starts
    /// from a healed cluster. Nothing is recorded: the history has not started.
    fn setup<'a>(&'a mut self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move { self.heal(test).await.1 })
    }

    /// Does the action the event names (`f` and `value` as the schedule records them) and
    /// returns the value to record. A `strobe-clock` flips for its `duration_ms` before it
    /// returns; `reset-clock` undoes it.
    fn invoke<'a>(
        &'a mut self,
        test: &'a Test,
        op: &'a Invocation,
    ) -> BoxFuture<'a, Result<Value, HarnessError>> {
        Box::pin(async move {
            let action =
                Action::parse(&op.f, &op.value).map_err(|why| nemesis_error(&op.f, why))?;
            let value = self.apply(test, &action).await?;
            if let Action::StrobeClock(strobe) = &action {
                let deadline = Instant::now() + Duration::from_millis(strobe.duration_ms);
                self.hold(test, &action, deadline, None).await?;
            }
            Ok(value)
        })
    }

    /// Heals everything, whether or not anything was injected: the network when partitions or
    /// loss were asked for, every node's clock when clock faults were, every node resumed when
    /// pauses were, every killed node started. Goes on past errors and returns the first;
    /// succeeds when run twice.
    fn teardown<'a>(&'a mut self, test: &'a Test) -> BoxFuture<'a, Result<(), HarnessError>> {
        Box::pin(async move {
            let (report, result) = self.heal(test).await;
            self.set_current(None);
            tracing::info!(
                "nemesis teardown: {}",
                serde_json::to_value(&report).expect("plain data")
            );
            result
        })
    }
}
