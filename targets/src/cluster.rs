//! Where the members of a server cluster (etcd, ZooKeeper) live: their names, hosts, ports
//! and directories, in the two modes a test runs in.
//!
//! - **local** (`Test.addresses` empty): every member is a process on this machine, on
//!   127.0.0.1 with ports from [`crate::local::free_port`] (chosen at the first setup and kept
//!   for restarts, since the members know each other by address).
//! - **remote** (`Test.addresses`: node -> IP; lab namespaces or VMs): each member listens on
//!   its node's address at the server's standard ports.
//!
//! In both modes member `node` keeps its files under `<base>/<node>/` (`<base>` = target option
//! `data_dir`, default a directory unique to the test under the temp dir). Lab hosts share one
//! file system, so the node's name in the path is what keeps members apart.
//!
//! ```
//! use faultline_core::Test;
//! use faultline_targets::cluster::{Cluster, Options};
//! let mut test = Test::example("etcd", "register", 1);
//! test.nodes = vec![];
//! test.target_options.insert("nodes".into(), serde_json::json!(3));
//! test.target_options.insert("data_dir".into(), serde_json::json!("/tmp/run/nodes"));
//! let options = Options::new("etcd", &test, &["nodes", "data_dir"]).unwrap();
//! let cluster = Cluster::new(&test, &options, 5, &[2379, 2380]).unwrap();
//! assert_eq!(cluster.nodes, ["n1", "n2", "n3"]);
//! assert_eq!(cluster.node_dir("n2"), "/tmp/run/nodes/n2");
//! assert!(cluster.is_local());
//! ```
//!
//! Design decision: the layout is computed here once and shared by both targets, so that
//! "local vs remote", node naming and directory rules cannot drift apart between them.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use faultline_core::remote::Command;
use faultline_core::{HarnessError, Remote, Test};

use crate::local::free_port;
use crate::TargetError;

/// The most members a cluster may have.
pub const MAX_NODES: usize = 15;

/// Where one member listens: its host and its ports, in the order the target asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub ports: Vec<u16>,
}

impl Endpoint {
    /// `host:port` of the `i`th port.
    pub fn addr(&self, i: usize) -> String {
        format!("{}:{}", self.host, self.ports[i])
    }
}

/// The members of one cluster and where they live.
#[derive(Debug)]
pub struct Cluster {
    /// Member names, in order; member `i` (0-based) has id `i + 1`.
    pub nodes: Vec<String>,
    /// Node -> host address in remote mode; empty in local mode.
    hosts: BTreeMap<String, String>,
    /// The server's standard ports (remote mode); local mode picks as many free ones.
    standard_ports: Vec<u16>,
    /// `<base>`: every member's files are under `<base>/<node>`.
    base_dir: String,
    /// Chosen at the first call of [`Cluster::endpoints`], kept for restarts.
    endpoints: Mutex<Option<BTreeMap<String, Endpoint>>>,
}

impl Cluster {
    /// Reads the members from `test.nodes` (or `n1..nN`, N = option `nodes`, default
    /// `default_nodes`), the mode from `test.addresses`, and `<base>` from option `data_dir`.
    pub fn new(
        test: &Test,
        options: &Options<'_>,
        default_nodes: usize,
        standard_ports: &[u16],
    ) -> Result<Cluster, TargetError> {
        assert!((1..=MAX_NODES).contains(&default_nodes));
        let count = options.u64_in("nodes", 1, MAX_NODES as u64)?;
        let nodes: Vec<String> = if test.nodes.is_empty() {
            let n = count.map(|n| n as usize).unwrap_or(default_nodes);
            (1..=n).map(|i| format!("n{i}")).collect()
        } else {
            if let Some(n) = count {
                if n as usize != test.nodes.len() {
                    return Err(options.bad(
                        "nodes",
                        format!("{n}, but the test names {} nodes", test.nodes.len()),
                    ));
                }
            }
            if test.nodes.len() > MAX_NODES {
                return Err(options.bad(
                    "nodes",
                    format!("{} nodes; at most {MAX_NODES}", test.nodes.len()),
                ));
            }
            test.nodes.clone()
        };
        let mut hosts = BTreeMap::new();
        if !test.addresses.is_empty() {
            for node in &nodes {
                let host = test
                    .addresses
                    .get(node)
                    .ok_or_else(|| TargetError::MissingAddress {
                        target: options.target.to_string(),
                        node: node.clone(),
                    })?;
                hosts.insert(node.clone(), host.clone());
            }
        }
        let base_dir = match options.string("data_dir")? {
            Some(dir) => {
                if !dir.starts_with('/') || dir.trim_end_matches('/').is_empty() {
                    return Err(options.bad("data_dir", format!("{dir:?} is not an absolute path")));
                }
                dir.trim_end_matches('/').to_string()
            }
            None => default_base_dir(options.target, test, hosts.is_empty()),
        };
        Ok(Cluster {
            nodes,
            hosts,
            standard_ports: standard_ports.to_vec(),
            base_dir,
            endpoints: Mutex::new(None),
        })
    }

    /// Every member is a local process on loopback.
    pub fn is_local(&self) -> bool {
        self.hosts.is_empty()
    }

    /// `<base>`.
    pub fn base_dir(&self) -> &str {
        &self.base_dir
    }

    /// `<base>/<node>`: everything of member `node` lives here.
    pub fn node_dir(&self, node: &str) -> String {
        assert!(
            !node.is_empty() && !node.contains('/') && node != "." && node != "..",
            "node name {node:?} cannot be a directory name"
        );
        format!("{}/{node}", self.base_dir)
    }

    /// The 1-based id of `node` (its position in [`Cluster::nodes`]).
    pub fn id(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == node).map(|i| i + 1)
    }

    /// Where every member listens. Local mode picks free loopback ports the first time and
    /// keeps them; remote mode uses each host's standard ports.
    pub fn endpoints(&self) -> Result<BTreeMap<String, Endpoint>, HarnessError> {
        let mut slot = self.endpoints.lock().expect("endpoints lock");
        if let Some(endpoints) = slot.as_ref() {
            return Ok(endpoints.clone());
        }
        let mut endpoints = BTreeMap::new();
        for node in &self.nodes {
            let endpoint = if self.is_local() {
                let mut ports = Vec::with_capacity(self.standard_ports.len());
                for _ in &self.standard_ports {
                    let addr = free_port().map_err(|e| HarnessError::Db {
                        node: node.clone(),
                        phase: "setup",
                        why: format!("choosing a loopback port: {e}"),
                    })?;
                    ports.push(addr.port());
                }
                Endpoint {
                    host: "127.0.0.1".to_string(),
                    ports,
                }
            } else {
                Endpoint {
                    host: self.hosts[node].clone(),
                    ports: self.standard_ports.clone(),
                }
            };
            endpoints.insert(node.clone(), endpoint);
        }
        *slot = Some(endpoints.clone());
        Ok(endpoints)
    }

    /// Where `node` listens.
    pub fn endpoint(&self, node: &str) -> Result<Endpoint, HarnessError> {
        self.endpoints()?
            .remove(node)
            .ok_or_else(|| HarnessError::Db {
                node: node.to_string(),
                phase: "setup",
                why: format!("not a member of this cluster ({})", self.nodes.join(", ")),
            })
    }
}

/// A directory no other test uses: `<tmp>/faultline-<target>-<pid>-<seed>-<n>`. On remote
/// nodes `<tmp>` is `/tmp` (this machine's temp dir may not exist there).
fn default_base_dir(target: &str, test: &Test, local: bool) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = if local {
        std::env::temp_dir()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string()
    } else {
        "/tmp".to_string()
    };
    format!(
        "{tmp}/faultline-{target}-{}-{}-{}",
        std::process::id(),
        test.seed,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A token no other run uses (etcd's `--initial-cluster-token`): the seed, this process and
/// the time, so that members of two runs can never join each other.
pub fn unique_token(test: &Test) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "faultline-{}-{}-{nanos}-{}",
        test.seed,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The last lines of a log on the node, for an error message.
pub async fn log_tail(remote: &dyn Remote, path: &str) -> String {
    match remote.exec(&Command::new("tail", &["-n", "5", path])).await {
        Ok(out) if out.success() => format!(
            "last lines of {path}:\n{}",
            String::from_utf8_lossy(&out.stdout).trim_end()
        ),
        _ => format!("see {path}"),
    }
}

/// `host:port` to a socket address (an IP, or a name the resolver knows).
pub async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = addr.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("resolving {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))
}

/// A request's own timeout when option `request_timeout_ms` is not given: nine tenths of the
/// per-op timeout, so the client classifies a slow request (a read as `fail`) before the
/// interpreter cuts it off as `info`.
pub fn default_request_timeout_ms(test: &Test) -> u64 {
    (test.limits.op_timeout_ms * 9 / 10).max(1)
}

/// A target's options (`test.target_options`), checked against the names it knows.
#[derive(Debug)]
pub struct Options<'a> {
    pub target: &'static str,
    values: &'a BTreeMap<String, Value>,
}

impl<'a> Options<'a> {
    /// Fails on an option outside `known`, and on any bug switch (these targets have none).
    pub fn new(
        target: &'static str,
        test: &'a Test,
        known: &[&str],
    ) -> Result<Options<'a>, TargetError> {
        if let Some(bug) = test.bugs.first() {
            return Err(TargetError::UnknownBug {
                target: target.to_string(),
                bug: bug.clone(),
                known: "(none: this target has no bug switches)".to_string(),
            });
        }
        for name in test.target_options.keys() {
            if !known.contains(&name.as_str()) {
                return Err(TargetError::BadOption {
                    target: target.to_string(),
                    option: name.clone(),
                    why: format!("unknown option; known: {}", known.join(", ")),
                });
            }
        }
        Ok(Options {
            target,
            values: &test.target_options,
        })
    }

    pub fn bad(&self, option: &str, why: impl Into<String>) -> TargetError {
        TargetError::BadOption {
            target: self.target.to_string(),
            option: option.to_string(),
            why: why.into(),
        }
    }

    /// An integer option in `min..=max`, if given.
    pub fn u64_in(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, TargetError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| self.bad(name, format!("expected {min} to {max}, got {value}"))),
        }
    }

    /// A string option, if given.
    pub fn string(&self, name: &str) -> Result<Option<String>, TargetError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad(name, format!("expected a string, got {other}"))),
        }
    }

    /// A boolean option, if given.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, TargetError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.bad(name, format!("expected true or false, got {other}"))),
        }
    }
}

/// The text a key is stored under: a string as is, anything else as its JSON text (the
/// register workload's keys are integers: `3` -> `"3"`).
pub fn key_text(key: Option<&Value>) -> String {
    match key {
        None | Some(Value::Null) => "_".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `null` cannot be written: it is the model's value of a register never written, and a
/// client reads a missing key as `null`. A definite `fail` (nothing is sent).
pub fn check_writable(value: &Value) -> Result<(), String> {
    if value.is_null() {
        Err("bad-request: null means never written and cannot be written".to_string())
    } else {
        Ok(())
    }
}

/// The bytes a value is stored as: its JSON text (an integer is its decimal text).
pub fn encode_value(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// A stored value read back: JSON text parses back to the value (`"3"` -> `3`); anything
/// else (written by someone else) comes back as a string, so a read never invents a value.
pub fn decode_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_mode_picks_distinct_ports_once_and_remote_mode_uses_standard_ports() {
        let mut test = Test::example("zookeeper", "register", 7);
        test.nodes = vec!["a".into(), "b".into()];
        let options = Options::new("zookeeper", &test, &["nodes"]).unwrap();
        let cluster = Cluster::new(&test, &options, 3, &[2181, 2888, 3888]).unwrap();
        assert!(cluster.is_local());
        let first = cluster.endpoints().unwrap();
        assert_eq!(first, cluster.endpoints().unwrap(), "kept for restarts");
        let mut ports: Vec<u16> = first.values().flat_map(|e| e.ports.clone()).collect();
        assert_eq!(ports.len(), 6);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6, "distinct");
        assert_eq!(first["a"].host, "127.0.0.1");
        assert!(cluster.base_dir().contains("faultline-zookeeper-"));
        assert_eq!(cluster.id("b"), Some(2));

        test.addresses.insert("a".into(), "10.88.0.11".into());
        test.addresses.insert("b".into(), "10.88.0.12".into());
        let options = Options::new("zookeeper", &test, &["nodes"]).unwrap();
        let cluster = Cluster::new(&test, &options, 3, &[2181, 2888, 3888]).unwrap();
        assert!(!cluster.is_local());
        assert_eq!(cluster.endpoint("b").unwrap().addr(0), "10.88.0.12:2181");
        assert!(cluster.base_dir().starts_with("/tmp/faultline-zookeeper-"));

        test.addresses.remove("b");
        let options = Options::new("zookeeper", &test, &["nodes"]).unwrap();
        let err = Cluster::new(&test, &options, 3, &[2181]).unwrap_err();
        assert!(
            err.to_string().contains("no address for node \"b\""),
            "{err}"
        );
    }

    #[test]
    fn options_are_checked() {
        let mut test = Test::example("etcd", "register", 1);
        test.target_options.insert("nodes".into(), json!(0));
        let options = Options::new("etcd", &test, &["nodes"]).unwrap();
        let err = Cluster::new(&test, &options, 5, &[2379]).unwrap_err();
        assert!(err.to_string().contains("expected 1 to 15"), "{err}");
        test.target_options.insert("colour".into(), json!("red"));
        let err = Options::new("etcd", &test, &["nodes"]).unwrap_err();
        assert!(err.to_string().contains("unknown option"), "{err}");
        let mut test = Test::example("etcd", "register", 1);
        test.target_options
            .insert("data_dir".into(), json!("relative/dir"));
        let options = Options::new("etcd", &test, &["data_dir"]).unwrap();
        assert!(Cluster::new(&test, &options, 5, &[2379]).is_err());
        test.bugs = vec!["stale-read".into()];
        assert!(matches!(
            Options::new("etcd", &test, &["data_dir"]),
            Err(TargetError::UnknownBug { .. })
        ));
        // test.nodes (n1 from Test::example) and a different `nodes` disagree.
        let mut test = Test::example("etcd", "register", 1);
        test.target_options.insert("nodes".into(), json!(3));
        let options = Options::new("etcd", &test, &["nodes"]).unwrap();
        assert!(Cluster::new(&test, &options, 5, &[2379]).is_err());
    }

    #[test]
    fn values_round_trip_as_json_text() {
        assert_eq!(encode_value(&json!(3)), b"3");
        assert_eq!(decode_value(b"3"), json!(3));
        assert_eq!(decode_value(&encode_value(&json!("x y"))), json!("x y"));
        assert_eq!(decode_value(b"not json"), json!("not json"));
        assert_eq!(key_text(Some(&json!(12))), "12");
        assert_eq!(key_text(Some(&json!("k"))), "k");
    }

    #[test]
    fn tokens_differ_between_runs() {
        let test = Test::example("etcd", "register", 1);
        assert_ne!(unique_token(&test), unique_token(&test));
    }
}
