//! `faultline lab`: N hosts on this machine, each a network namespace with its own address,
//! hostname, hosts file and sshd, so that the harness drives them over SSH exactly as it
//! drives VMs (`docs/lab.md`).
//!
//! ```text
//! faultline lab up --hosts 5 [--name NAME]   # ~0.1 s; prints the hosts and how to ssh in
//! faultline lab status [--name NAME]
//! faultline lab down [--name NAME]           # idempotent; also after a crashed `up`
//! ```
//!
//! Layout of lab `NAME` with subnet `10.88.K.0/24` (K free on this machine, so labs coexist):
//! the control node is the root namespace at `10.88.K.1` on bridge `flbr-NAME`; host `nI` is
//! namespace `fl-NAME-nI` at `10.88.K.(10+I)`, linked by veth `flv-NAME-I` (in the root
//! namespace) to its `eth0`. sshd runs in each host's own mount and UTS namespaces, where a
//! hosts file and a `resolv.conf` are bind-mounted and the hostname is `nI`; everything started
//! over SSH inherits them.
//!
//! Design decision: the lab's state (`/var/lib/faultline/labs/NAME/state.json`) lists every
//! object `up` creates and is written *before* the object exists, so `down` can remove a lab
//! whose `up` was killed at any point; `down` also finds objects by their names, so it works
//! even without a state file. Nothing is remembered in memory between commands.

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faultline_targets::ssh::shell_quote;

use crate::{EXIT_BAD_INPUT, EXIT_INTERNAL};

/// Where every lab keeps its state, keys and configuration.
pub const LABS_DIR: &str = "/var/lib/faultline/labs";
/// The lab `faultline lab` and `faultline test --lab` use when no name is given.
pub const DEFAULT_NAME: &str = "default";
/// Lab names are short because interface names are (15 bytes: `flv-NAME-NN`, `flbr-NAME`).
pub const MAX_NAME_LEN: usize = 8;
/// The most hosts one lab may have (addresses `.11` to `.(10+MAX)`, two-digit veth suffixes).
pub const MAX_HOSTS: usize = 50;
/// The first two octets of every lab's subnet; the third is chosen per lab.
pub const SUBNET_PREFIX: &str = "10.88";
/// Bound on waiting for every sshd of a new lab to accept connections.
pub const SSHD_READY_TIMEOUT_MS: u64 = 10_000;
/// Bound on waiting for a namespace's processes to be gone after SIGKILL.
pub const PIDS_GONE_TIMEOUT_MS: u64 = 5_000;
/// The sshd every host runs.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The SFTP server sshd runs for uploads and downloads.
pub const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const POLL_MS: u64 = 5;

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Build N network-namespace hosts with sshd (root).
    Up(UpArgs),
    /// Remove everything a lab made: processes, namespaces, links, rules, files (root).
    Down(NameArgs),
    /// Show labs and whether their hosts are up.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
struct UpArgs {
    /// How many hosts (n1..nN).
    #[arg(long)]
    hosts: usize,
    /// The lab's name: 1-8 characters of a-z and 0-9.
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
    /// Pause this long after each step (to test recovery from a killed `up`).
    #[arg(long, default_value_t = 0, hide = true)]
    step_delay_ms: u64,
}

#[derive(Args, Debug)]
struct NameArgs {
    /// The lab's name.
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Only this lab (default: every lab).
    #[arg(long)]
    name: Option<String>,
}

/// Why a lab command failed: the operator's mistake (exit 254) or the machine's (255).
#[derive(Debug)]
pub enum LabError {
    Usage(String),
    Failed(anyhow::Error),
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabError::Usage(why) => f.write_str(why),
            LabError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for LabError {
    fn from(e: anyhow::Error) -> Self {
        LabError::Failed(e)
    }
}

impl LabError {
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::Usage(_) => EXIT_BAD_INPUT,
            LabError::Failed(_) => EXIT_INTERNAL,
        }
    }
}

pub fn run(args: LabArgs) -> ExitCode {
    let result = match args.command {
        LabCommand::Up(up_args) => {
            let started = Instant::now();
            up(
                &up_args.name,
                up_args.hosts,
                Duration::from_millis(up_args.step_delay_ms),
            )
            .map(|state| print_up(&state, started.elapsed()))
        }
        LabCommand::Down(down_args) => down(&down_args.name).map(|removed| {
            if removed {
                println!("lab {} is down", down_args.name);
            } else {
                println!("no lab named {}: nothing to do", down_args.name);
            }
        }),
        LabCommand::Status(status_args) => status(status_args.name.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline lab: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Everything one lab made or is about to make. Saved before each object is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    /// The lab's directory: this file, keys, configs, logs.
    pub dir: PathBuf,
    /// The third octet K of the lab's subnet `10.88.K.0/24`, once chosen.
    pub subnet: Option<u8>,
    /// The file under `LABS_DIR/.subnets/` that reserves the subnet (holds the lab's name).
    pub subnet_claim: Option<PathBuf>,
    /// The bridge in the root namespace; the control node's address is on it.
    pub bridge: String,
    pub hosts: Vec<LabHost>,
    /// The `FORWARD` rule `up` added (iptables arguments after the chain), when the root
    /// namespace's forwarding would otherwise drop bridged traffic.
    pub forward_rule: Option<Vec<String>>,
    /// `up` finished: every sshd accepted a connection.
    pub complete: bool,
}

/// One host of a lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabHost {
    /// The node name and hostname: `n1`, `n2`, ...
    pub name: String,
    /// The network namespace: `fl-LAB-nI`.
    pub namespace: String,
    /// The root namespace's end of the host's veth pair (the host's end is its `eth0`).
    pub veth: String,
    /// The host's address, once the subnet is chosen.
    pub address: Option<String>,
    /// The pid of the host's sshd, once it runs.
    pub sshd_pid: Option<u32>,
}

impl LabState {
    /// The plan of a new lab: names of everything, no subnet yet.
    fn planned(name: &str, hosts: usize, dir: PathBuf) -> LabState {
        LabState {
            name: name.to_string(),
            dir,
            subnet: None,
            subnet_claim: None,
            bridge: bridge_name(name),
            hosts: (1..=hosts)
                .map(|i| LabHost {
                    name: format!("n{i}"),
                    namespace: namespace_name(name, i),
                    veth: veth_name(name, i),
                    address: None,
                    sshd_pid: None,
                })
                .collect(),
            forward_rule: None,
            complete: false,
        }
    }

    /// The lab's state, if it has any.
    pub fn load(name: &str) -> anyhow::Result<Option<LabState>> {
        let path = labs_dir().join(name).join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a lab state", path.display()))?;
        Ok(Some(state))
    }

    /// Writes the state atomically (a new file renamed over the old), so a crash never leaves
    /// half a state file.
    fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join("state.json");
        let temporary = self.dir.join("state.json.new");
        let text = serde_json::to_string_pretty(self).expect("a lab state serializes") + "\n";
        std::fs::write(&temporary, text)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// The private key that logs in to every host as root.
    pub fn private_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The hosts' keys, for strict host-key checking.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    fn host_dir(&self, host: &LabHost) -> PathBuf {
        self.dir.join(&host.name)
    }

    fn sshd_config(&self, host: &LabHost) -> PathBuf {
        self.host_dir(host).join("sshd_config")
    }

    /// The control node's address: the bridge's.
    pub fn control_address(&self) -> Option<String> {
        self.subnet.map(|k| format!("{SUBNET_PREFIX}.{k}.1"))
    }

    /// What is wrong with the lab, if anything (empty: every host is up).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.complete {
            problems.push("`lab up` did not finish".to_string());
        }
        for host in &self.hosts {
            if !netns_exists(&host.namespace) {
                problems.push(format!(
                    "{}: namespace {} is gone",
                    host.name, host.namespace
                ));
            } else if !self.sshd_alive(host) {
                problems.push(format!("{}: sshd is not running", host.name));
            }
        }
        problems
    }

    /// Whether the recorded sshd of `host` is alive (and is this lab's: its command line
    /// names the host's config, so a reused pid does not count).
    fn sshd_alive(&self, host: &LabHost) -> bool {
        let Some(pid) = host.sshd_pid else {
            return false;
        };
        let config = self.sshd_config(host);
        process_mentions(pid, &format!("{SSHD} -D -e -f {}", config.display()))
    }
}

/// The namespace of host `i` of lab `name`.
pub fn namespace_name(name: &str, i: usize) -> String {
    format!("fl-{name}-n{i}")
}

/// The bridge of lab `name`.
pub fn bridge_name(name: &str) -> String {
    format!("flbr-{name}")
}

/// The root namespace's end of host `i`'s veth pair.
pub fn veth_name(name: &str, i: usize) -> String {
    format!("flv-{name}-{i}")
}

/// The directory holding every lab.
pub fn labs_dir() -> PathBuf {
    PathBuf::from(LABS_DIR)
}

/// Lab names: 1-8 of a-z and 0-9 (they become parts of interface names, which are short, and
/// of paths).
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::Usage(format!(
            "lab name {name:?}: use 1 to {MAX_NAME_LEN} characters of a-z and 0-9"
        )))
    }
}

/// Labs need root: namespaces, links, mounts, iptables and sshd.
pub fn require_root(what: &str) -> Result<(), LabError> {
    if effective_uid() == Some(0) {
        Ok(())
    } else {
        Err(LabError::Usage(format!(
            "{what} needs root (it creates network namespaces, a bridge and sshd processes); \
             run it with sudo"
        )))
    }
}

/// The effective uid, from `/proc/self/status` (no `unsafe` geteuid).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Builds lab `name` with `hosts` hosts. On failure it removes what it made; when killed, the
/// state it leaves lets `down` do so.
pub fn up(name: &str, hosts: usize, step_delay: Duration) -> Result<LabState, LabError> {
    require_root("faultline lab up")?;
    validate_name(name)?;
    if hosts == 0 || hosts > MAX_HOSTS {
        return Err(LabError::Usage(format!(
            "--hosts must be between 1 and {MAX_HOSTS}"
        )));
    }
    std::fs::create_dir_all(labs_dir())
        .with_context(|| format!("creating {}", labs_dir().display()))?;
    let dir = labs_dir().join(name);
    // Creating the directory claims the name: a second `up` of the same name stops here.
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LabError::Usage(format!(
                "a lab named {name} exists ({}); use it, or run `faultline lab down --name \
                 {name}` first",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("creating {}", dir.display()))
                .into())
        }
    }
    let mut state = LabState::planned(name, hosts, dir.clone());
    let leftovers = leftover_objects(name);
    if !leftovers.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(LabError::Usage(format!(
            "objects named like lab {name}'s exist without a lab state: {}; remove them with \
             `faultline lab down --name {name}`",
            leftovers.join(", ")
        )));
    }
    state.save()?;
    match build(&mut state, step_delay) {
        Ok(()) => Ok(state),
        Err(e) => {
            // Leave nothing half-built behind.
            if let Err(cleanup) = down(name) {
                eprintln!("faultline lab: removing the half-built lab {name}: {cleanup}");
            }
            Err(LabError::Failed(e.context(format!("building lab {name}"))))
        }
    }
}

/// Objects of lab `name` that exist (namespaces, bridge, veths), found by their names.
fn leftover_objects(name: &str) -> Vec<String> {
    let mut found: Vec<String> = netns_list()
        .into_iter()
        .filter(|ns| ns.starts_with(&format!("fl-{name}-n")))
        .collect();
    found.extend(links_of(name));
    found
}

/// The steps of `up`, each recorded in the state before it runs.
fn build(state: &mut LabState, step_delay: Duration) -> anyhow::Result<()> {
    let pause = || {
        if !step_delay.is_zero() {
            std::thread::sleep(step_delay);
        }
    };
    let k = claim_subnet(state)?;
    for (i, host) in state.hosts.iter_mut().enumerate() {
        host.address = Some(format!("{SUBNET_PREFIX}.{k}.{}", 11 + i));
    }
    state.save()?;
    write_files(state)?;
    pause();
    allow_forwarding(state)?;
    create_network(state)?;
    pause();
    // sshd's privilege-separation directory, shared by every host (never removed: other labs
    // and the machine's own sshd use it).
    std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
    for host in &state.hosts {
        start_sshd(state, host)?;
        pause();
    }
    wait_for_sshds(state)?;
    state.complete = true;
    state.save()
}

/// Chooses a free subnet `10.88.K.0/24` and reserves it with a claim file that holds the
/// lab's name (created atomically, so two labs coming up at once never share one). A subnet
/// is free when no lab claims it and no address or route of the root namespace is in it.
fn claim_subnet(state: &mut LabState) -> anyhow::Result<u8> {
    let claims = labs_dir().join(".subnets");
    std::fs::create_dir_all(&claims).with_context(|| format!("creating {}", claims.display()))?;
    let mine = state.dir.join("subnet-claim");
    std::fs::write(&mine, &state.name).with_context(|| format!("writing {}", mine.display()))?;
    let used = subnets_in_use()?;
    for k in 1..=254u8 {
        if used.contains(&k) {
            continue;
        }
        let claim = claims.join(k.to_string());
        state.subnet = Some(k);
        state.subnet_claim = Some(claim.clone());
        state.save()?;
        // A hard link appears atomically, already holding the name, or fails if taken.
        match std::fs::hard_link(&mine, &claim) {
            Ok(()) => return Ok(k),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&claim).unwrap_or_default();
                let owner = owner.trim();
                // A claim whose lab no longer exists was left by a lab removed by hand.
                if !owner.is_empty() && !labs_dir().join(owner).exists() {
                    let _ = std::fs::remove_file(&claim);
                    if std::fs::hard_link(&mine, &claim).is_ok() {
                        return Ok(k);
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", claim.display())),
        }
    }
    state.subnet = None;
    state.subnet_claim = None;
    state.save()?;
    bail!("no free subnet {SUBNET_PREFIX}.K.0/24 (K in 1..254): take other labs down")
}

/// Third octets K for which the root namespace has an address or route in `10.88.K.0/24`.
fn subnets_in_use() -> anyhow::Result<BTreeSet<u8>> {
    let mut used = BTreeSet::new();
    for args in [
        &["-4", "-o", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"],
    ] {
        used.extend(third_octets(&command_output("ip", args)?));
    }
    Ok(used)
}

/// The K of every address `10.88.K.x` in `text` (not of `110.88.K.x`).
fn third_octets(text: &str) -> BTreeSet<u8> {
    let prefix = format!("{SUBNET_PREFIX}.");
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(&prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(k) = digits.parse::<u8>() {
            found.insert(k);
        }
    }
    found
}

/// Keys, the hosts file, resolv.conf, and each host's sshd config.
fn write_files(state: &LabState) -> anyhow::Result<()> {
    let k = state.subnet.expect("the subnet is chosen first");
    for host in &state.hosts {
        let dir = state.host_dir(host);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Every key at once: ssh-keygen is quick, but N of them one after another is not.
    let mut keys = vec![(state.private_key(), format!("faultline-lab-{}", state.name))];
    for host in &state.hosts {
        keys.push((
            state.host_dir(host).join("ssh_host_ed25519_key"),
            format!("{}@{}", host.name, state.name),
        ));
    }
    let mut children = Vec::new();
    for (path, comment) in &keys {
        let child = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running ssh-keygen (is openssh-client installed?)")?;
        children.push((path, child));
    }
    for (path, child) in children {
        let out = child.wait_with_output().context("waiting for ssh-keygen")?;
        if !out.status.success() {
            bail!(
                "ssh-keygen for {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let public = |path: &Path| -> anyhow::Result<String> {
        let file = PathBuf::from(format!("{}.pub", path.display()));
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))
    };
    write(
        &state.dir.join("authorized_keys"),
        &public(&state.private_key())?,
    )?;
    let mut known_hosts = String::new();
    let mut hosts_file = format!(
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{SUBNET_PREFIX}.{k}.1 control\n"
    );
    for host in &state.hosts {
        let address = host
            .address
            .as_deref()
            .expect("addresses follow the subnet");
        let key = public(&state.host_dir(host).join("ssh_host_ed25519_key"))?;
        // `type base64 comment`: known_hosts wants `address type base64`.
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        known_hosts.push_str(&format!("{address} {}\n", key.join(" ")));
        hosts_file.push_str(&format!("{address} {}\n", host.name));
    }
    write(&state.known_hosts(), &known_hosts)?;
    write(&state.dir.join("hosts"), &hosts_file)?;
    // The system resolver is unreachable from a namespace, and each failed lookup would stall
    // for seconds (the JVM's getLocalHost() does one): fail lookups at once instead.
    write(
        &state.dir.join("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )?;
    for host in &state.hosts {
        let host_dir = state.host_dir(host);
        let config = sshd_config(
            host.address
                .as_deref()
                .expect("addresses follow the subnet"),
            &host_dir.join("ssh_host_ed25519_key"),
            &host_dir.join("sshd.pid"),
            &state.dir.join("authorized_keys"),
        );
        write(&state.sshd_config(host), &config)?;
    }
    Ok(())
}

/// One host's sshd configuration.
///
/// `SetEnv SHLVL=1`: sshd runs every command through root's login shell, and bash sources
/// `~/.bashrc` for a command from sshd only when its shell level (SHLVL from the environment,
/// plus one) is below 2. A `.bashrc` may be slow (this machine's runs `pyenv init`, which takes
/// pyenv's rehash lock: concurrent commands queued behind it for up to a minute); with SHLVL=1
/// the login shell is at level 2 and runs the command without it (docs/lab.md).
fn sshd_config(address: &str, host_key: &Path, pid_file: &Path, authorized_keys: &Path) -> String {
    format!(
        "ListenAddress {address}:22\n\
         HostKey {host_key}\n\
         PidFile {pid_file}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         UseDNS no\n\
         PrintMotd no\n\
         MaxStartups 100:30:200\n\
         MaxSessions 100\n\
         SetEnv SHLVL=1\n\
         Subsystem sftp {SFTP_SERVER}\n",
        host_key = host_key.display(),
        pid_file = pid_file.display(),
        authorized_keys = authorized_keys.display(),
    )
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Bridged traffic passes the root namespace's FORWARD chain (with br_netfilter); a DROP
/// policy or rule there would silence the lab, so accept the bridge's own traffic first.
fn allow_forwarding(state: &mut LabState) -> anyhow::Result<()> {
    let rules = command_output("iptables", &["-w", "-S", "FORWARD"])?;
    if !forwarding_may_drop(&rules) {
        return Ok(());
    }
    let rule: Vec<String> = ["-i", &state.bridge, "-o", &state.bridge, "-j", "ACCEPT"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    state.forward_rule = Some(rule.clone());
    state.save()?;
    let mut args = vec!["-w".to_string(), "-I".into(), "FORWARD".into(), "1".into()];
    args.extend(rule);
    run_checked("iptables", &args)
}

/// Whether a FORWARD chain (as `iptables -S FORWARD` prints it) may drop the lab's bridged
/// traffic: anything but an ACCEPT policy with no rules (a rule may drop or jump to a chain
/// that does; an ACCEPT of our own in front costs nothing).
fn forwarding_may_drop(rules: &str) -> bool {
    rules.trim() != "-P FORWARD ACCEPT"
}

/// The bridge, and for each host its namespace, veth pair, addresses and default route: one
/// `ip -batch` for the root namespace and one per host, the hosts' in parallel.
fn create_network(state: &LabState) -> anyhow::Result<()> {
    let k = state.subnet.expect("the subnet is chosen first");
    let bridge = &state.bridge;
    let mut root = format!(
        "link add {bridge} type bridge\naddr add {SUBNET_PREFIX}.{k}.1/24 dev {bridge}\n\
         link set {bridge} up\n"
    );
    for host in &state.hosts {
        let (ns, veth) = (&host.namespace, &host.veth);
        root.push_str(&format!(
            "netns add {ns}\nlink add {veth} type veth peer name eth0 netns {ns}\n\
             link set {veth} master {bridge}\nlink set {veth} up\n"
        ));
    }
    ip_batch(None, &root)?;
    let mut children = Vec::new();
    for host in &state.hosts {
        let address = host
            .address
            .as_deref()
            .expect("addresses follow the subnet");
        let inside = format!(
            "link set lo up\naddr add {address}/24 dev eth0\nlink set eth0 up\n\
             route add default via {SUBNET_PREFIX}.{k}.1\n"
        );
        children.push((host, spawn_ip_batch(Some(&host.namespace), &inside)?));
    }
    for (host, child) in children {
        finish_ip_batch(Some(&host.namespace), child)?;
    }
    Ok(())
}

fn ip_batch(namespace: Option<&str>, commands: &str) -> anyhow::Result<()> {
    let child = spawn_ip_batch(namespace, commands)?;
    finish_ip_batch(namespace, child)
}

fn spawn_ip_batch(namespace: Option<&str>, commands: &str) -> anyhow::Result<std::process::Child> {
    let mut command = Command::new("ip");
    if let Some(ns) = namespace {
        command.args(["-n", ns]);
    }
    let mut child = command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip (is iproute2 installed?)")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(commands.as_bytes())
        .context("writing to ip -batch")?;
    Ok(child)
}

fn finish_ip_batch(namespace: Option<&str>, child: std::process::Child) -> anyhow::Result<()> {
    let out = child.wait_with_output().context("waiting for ip -batch")?;
    if !out.status.success() {
        bail!(
            "ip{} -batch failed: {}",
            namespace.map(|ns| format!(" -n {ns}")).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Starts `host`'s sshd in its namespace, in new mount and UTS namespaces with the lab's hosts
/// file and resolv.conf and the hostname `nI`. `setsid -f` detaches it: it is nobody's child
/// here, so it outlives `lab up`, and `faultline test` has no zombie to reap.
fn start_sshd(state: &LabState, host: &LabHost) -> anyhow::Result<()> {
    let quote = |path: PathBuf| shell_quote(&path.to_string_lossy());
    let script = format!(
        "mount --bind {hosts} /etc/hosts && mount --bind {resolv} /etc/resolv.conf && \
         hostname {name} && exec {SSHD} -D -e -f {config}",
        hosts = quote(state.dir.join("hosts")),
        resolv = quote(state.dir.join("resolv.conf")),
        name = shell_quote(&host.name),
        config = quote(state.sshd_config(host)),
    );
    let log_path = state.host_dir(host).join("sshd.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let status = Command::new("setsid")
        .args(["-f", "ip", "netns", "exec", &host.namespace])
        .args(["unshare", "--uts", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("sshd log")?)
        .stderr(log)
        .status()
        .context("running setsid")?;
    if !status.success() {
        bail!(
            "starting sshd for {} exited with {status} (see {})",
            host.name,
            log_path.display()
        );
    }
    Ok(())
}

/// Waits (bounded) until every host's sshd sends its banner, then records its pid.
fn wait_for_sshds(state: &mut LabState) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(SSHD_READY_TIMEOUT_MS);
    for i in 0..state.hosts.len() {
        let host = state.hosts[i].clone();
        let address = host.address.clone().expect("addresses follow the subnet");
        let log = state.host_dir(&host).join("sshd.log");
        while !ssh_banner(&address) {
            if Instant::now() >= deadline {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!(
                    "sshd of {} at {address}:22 did not answer within {SSHD_READY_TIMEOUT_MS} \
                     ms; its log ({}): {}",
                    host.name,
                    log.display(),
                    log_text.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
        // sshd writes its pid file once it listens.
        let pid_path = state.host_dir(&host).join("sshd.pid");
        let pid = loop {
            let pid = std::fs::read_to_string(&pid_path)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            match pid {
                Some(pid) => break pid,
                None if Instant::now() >= deadline => {
                    bail!(
                        "sshd of {} wrote no pid file {}",
                        host.name,
                        pid_path.display()
                    )
                }
                None => std::thread::sleep(Duration::from_millis(POLL_MS)),
            }
        };
        state.hosts[i].sshd_pid = Some(pid);
    }
    state.save()
}

/// Whether something at `address:22` sends an SSH banner.
fn ssh_banner(address: &str) -> bool {
    let Ok(socket) = format!("{address}:22").parse() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&socket, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

/// Removes lab `name`: kills every process in its namespaces, deletes the namespaces, veths,
/// the bridge, its FORWARD rule, faketime files of the processes it killed, its subnet claim
/// and its directory. Works from the state file and, without one, from the objects' names.
/// Returns whether there was anything to remove. Idempotent.
pub fn down(name: &str) -> Result<bool, LabError> {
    require_root("faultline lab down")?;
    validate_name(name)?;
    let dir = labs_dir().join(name);
    let state = match LabState::load(name) {
        Ok(state) => state,
        Err(e) => {
            // The state file is written atomically, so this is damage from outside; remove
            // what the names show.
            eprintln!("faultline lab: {e:#}; removing lab {name} by its objects' names");
            None
        }
    };
    let mut namespaces: BTreeSet<String> = netns_list()
        .into_iter()
        .filter(|ns| ns.starts_with(&format!("fl-{name}-n")))
        .collect();
    let mut links: BTreeSet<String> = links_of(name).into_iter().collect();
    if let Some(state) = &state {
        namespaces.extend(state.hosts.iter().map(|h| h.namespace.clone()));
        links.extend(state.hosts.iter().map(|h| h.veth.clone()));
        links.insert(state.bridge.clone());
    }
    let existed = dir.exists()
        || namespaces.iter().any(|ns| netns_exists(ns))
        || links.iter().any(|l| link_exists(l));
    let mut problems = Vec::new();

    // 1. Processes first: a namespace with processes left in it lives on after `ip netns del`.
    let mut killed = BTreeSet::new();
    for ns in namespaces.iter().filter(|ns| netns_exists(ns)) {
        match kill_namespace_processes(ns) {
            Ok(pids) => killed.extend(pids),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    // An sshd of this lab outside its namespaces (one deleted by hand) is still ours: its
    // command line names its config in the lab's directory.
    let marker = format!("{SSHD} -D -e -f {}/", dir.display());
    for pid in processes_mentioning(&marker) {
        let _ = run_checked("kill", &["-KILL".to_string(), pid.to_string()]);
        killed.insert(pid);
    }
    for pid in &killed {
        // libfaketime leaves these behind when its process dies by a signal.
        for file in [
            format!("/dev/shm/faketime_shm_{pid}"),
            format!("/dev/shm/sem.faketime_sem_{pid}"),
        ] {
            let _ = std::fs::remove_file(file);
        }
    }
    // 2. Namespaces (their veth ends go with them), then whatever links are left.
    for ns in namespaces.iter().filter(|ns| netns_exists(ns)) {
        if let Err(e) = run_checked("ip", &["netns".into(), "del".into(), ns.clone()]) {
            problems.push(format!("{e:#}"));
        }
    }
    for link in links.iter().filter(|l| link_exists(l)) {
        if let Err(e) = run_checked("ip", &["link".into(), "del".into(), link.clone()]) {
            if link_exists(link) {
                problems.push(format!("{e:#}"));
            }
        }
    }
    if let Some(state) = &state {
        // 3. The FORWARD rule, every copy of it.
        if let Some(rule) = &state.forward_rule {
            let mut args = vec!["-w".to_string(), "-D".into(), "FORWARD".into()];
            args.extend(rule.iter().cloned());
            for _ in 0..16 {
                if run_checked("iptables", &args).is_err() {
                    break;
                }
            }
        }
        // 4. The subnet claim, if it is ours (a claim we lost to another lab is not).
        if let Some(claim) = &state.subnet_claim {
            let owner = std::fs::read_to_string(claim).unwrap_or_default();
            if owner.trim() == name {
                let _ = std::fs::remove_file(claim);
            }
        }
    }
    if !problems.is_empty() {
        return Err(LabError::Failed(anyhow::anyhow!(
            "lab {name} is not fully removed (its state is kept; run `faultline lab down --name \
             {name}` again): {}",
            problems.join("; ")
        )));
    }
    // 5. Last, the state: once it is gone nothing records the lab.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(existed)
}

/// SIGKILLs every process in namespace `ns` until none is left (bounded); returns their pids.
fn kill_namespace_processes(ns: &str) -> anyhow::Result<BTreeSet<u32>> {
    let deadline = Instant::now() + Duration::from_millis(PIDS_GONE_TIMEOUT_MS);
    let mut killed = BTreeSet::new();
    loop {
        let out = command_output("ip", &["netns", "pids", ns])?;
        let pids: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        if pids.is_empty() {
            return Ok(killed);
        }
        if Instant::now() >= deadline {
            bail!(
                "processes {} in namespace {ns} are still alive {PIDS_GONE_TIMEOUT_MS} ms after \
                 SIGKILL",
                pids.join(" ")
            );
        }
        killed.extend(pids.iter().filter_map(|p| p.parse::<u32>().ok()));
        // Some may exit between listing and killing: "No such process" is expected.
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// `faultline lab status`: every lab (or one) and the state of its hosts.
fn status(name: Option<&str>) -> Result<(), LabError> {
    let names: Vec<String> = match name {
        Some(name) => {
            validate_name(name)?;
            vec![name.to_string()]
        }
        None => {
            let mut names: Vec<String> = std::fs::read_dir(labs_dir())
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        }
    };
    if names.is_empty() {
        println!("no labs (faultline lab up --hosts N builds one)");
    }
    for name in names {
        match LabState::load(&name)? {
            None if labs_dir().join(&name).exists() => {
                println!("{name}: broken (no state file); faultline lab down --name {name}")
            }
            None => println!("{name}: no such lab"),
            Some(state) => {
                let problems = state.problems();
                let subnet = state
                    .subnet
                    .map(|k| format!("{SUBNET_PREFIX}.{k}.0/24"))
                    .unwrap_or_else(|| "no subnet yet".into());
                let health = if problems.is_empty() {
                    "up".to_string()
                } else {
                    format!("NOT up: {}", problems.join("; "))
                };
                println!("{name}: {} hosts on {subnet}, {health}", state.hosts.len());
                for host in &state.hosts {
                    println!(
                        "  {} {} namespace {} sshd {}",
                        host.name,
                        host.address.as_deref().unwrap_or("-"),
                        host.namespace,
                        match (host.sshd_pid, state.sshd_alive(host)) {
                            (Some(pid), true) => format!("pid {pid}"),
                            (Some(pid), false) => format!("pid {pid} (not running)"),
                            (None, _) => "not started".into(),
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_up(state: &LabState, elapsed: Duration) {
    let k = state.subnet.expect("a complete lab has a subnet");
    println!(
        "lab {} is up: {} hosts on {SUBNET_PREFIX}.{k}.0/24 (control node {}) in {:.2} s",
        state.name,
        state.hosts.len(),
        state
            .control_address()
            .expect("a complete lab has a subnet"),
        elapsed.as_secs_f64()
    );
    for host in &state.hosts {
        println!(
            "  {} {} (namespace {})",
            host.name,
            host.address.as_deref().unwrap_or("-"),
            host.namespace
        );
    }
    if let Some(first) = state.hosts.first().and_then(|h| h.address.as_deref()) {
        println!(
            "ssh: ssh -i {} -o UserKnownHostsFile={} root@{first}",
            state.private_key().display(),
            state.known_hosts().display()
        );
    }
    println!("down: faultline lab down --name {}", state.name);
}

/// A lab a `faultline test` run uses: an existing one, or one brought up for the run and
/// taken down when the lease is dropped (normal end, error, panic).
pub struct Lease {
    pub state: LabState,
    temporary: bool,
}

/// Labs brought up for the current `faultline test`, so that a second Ctrl-C (which exits at
/// once) still takes them down.
fn temporary_labs() -> &'static Mutex<Vec<String>> {
    static TEMPORARY: Mutex<Vec<String>> = Mutex::new(Vec::new());
    &TEMPORARY
}

/// Uses lab `name` if it is up with at least `hosts` hosts; brings it up for this run if it
/// does not exist.
pub fn acquire(name: &str, hosts: usize) -> Result<Lease, LabError> {
    require_root("faultline test --lab")?;
    validate_name(name)?;
    if let Some(state) = LabState::load(name)? {
        let problems = state.problems();
        if !problems.is_empty() {
            return Err(LabError::Usage(format!(
                "lab {name} is not up ({}); run `faultline lab down --name {name}`, or choose \
                 another --lab-name",
                problems.join("; ")
            )));
        }
        if state.hosts.len() < hosts {
            return Err(LabError::Usage(format!(
                "lab {name} has {} hosts, this test needs {hosts}; take it down \
                 (`faultline lab down --name {name}`) or choose another --lab-name",
                state.hosts.len()
            )));
        }
        return Ok(Lease {
            state,
            temporary: false,
        });
    }
    // Registered before it exists, so an exit during `up` still takes it down.
    temporary_labs()
        .lock()
        .expect("lab registry")
        .push(name.to_string());
    match up(name, hosts, Duration::ZERO) {
        Ok(state) => Ok(Lease {
            state,
            temporary: true,
        }),
        Err(e) => {
            temporary_labs()
                .lock()
                .expect("lab registry")
                .retain(|n| n != name);
            Err(e)
        }
    }
}

impl Lease {
    /// Whether this run brought the lab up (and takes it down).
    pub fn temporary(&self) -> bool {
        self.temporary
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.temporary {
            take_down(&self.state.name);
        }
    }
}

/// Takes down lab `name`, brought up for this run, once.
///
/// One take-down at a time, and the lab leaves the registry only once it is down: a second
/// Ctrl-C that arrives while the run's own teardown is taking the lab down waits for it to
/// finish before the process exits, instead of finding the registry empty and exiting halfway.
fn take_down(name: &str) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let registered = temporary_labs()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(&name.to_string());
    if !registered {
        return; // Taken down already, while this one waited.
    }
    match down(name) {
        Ok(_) => eprintln!("faultline: lab {name} (brought up for this run) is down"),
        Err(e) => eprintln!("faultline: taking lab {name} down: {e}"),
    }
    temporary_labs()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .retain(|n| n != name);
}

/// Takes down every lab brought up for this run (for exits that skip destructors).
pub fn take_down_temporary_labs() {
    let names = temporary_labs()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    for name in names {
        take_down(&name);
    }
}

/// Names of the network namespaces (`ip netns list`).
fn netns_list() -> Vec<String> {
    match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

fn link_exists(link: &str) -> bool {
    Path::new("/sys/class/net").join(link).exists()
}

/// Links of lab `name` in the root namespace (its bridge and veths), by their names.
fn links_of(name: &str) -> Vec<String> {
    let bridge = bridge_name(name);
    let veth_prefix = format!("flv-{name}-");
    match std::fs::read_dir("/sys/class/net") {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|l| *l == bridge || l.starts_with(&veth_prefix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Live processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && process_mentions(pid, needle))
        .collect()
}

/// Whether process `pid` is alive (not a zombie) and its command line contains `needle`.
fn process_mentions(pid: u32, needle: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline)
        .replace('\0', " ")
        .contains(needle)
}

/// Runs a command and returns its stdout; a non-zero exit is an error with its stderr.
fn command_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn run_checked(program: &str, args: &[String]) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command_output(program, &args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_names_and_bad_names_are_refused() {
        let longest = "abcdefgh";
        validate_name(longest).unwrap();
        assert!(bridge_name(longest).len() <= 15);
        assert!(veth_name(longest, MAX_HOSTS).len() <= 15);
        for bad in ["", "abcdefghi", "Lab", "a-b", "a b", "../x", "ü"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subnets_in_use_are_read_from_addresses_and_routes() {
        let text = "3: flbr-a    inet 10.88.1.1/24 scope global flbr-a\n\
                    10.88.250.0/24 dev x proto kernel\n\
                    inet 110.88.7.1/8 and 10.88.x and 1.10.88.9.1\n";
        assert_eq!(third_octets(text), BTreeSet::from([1, 250]));
    }

    #[test]
    fn forwarding_gets_an_accept_unless_it_is_wide_open() {
        assert!(!forwarding_may_drop("-P FORWARD ACCEPT\n"));
        assert!(forwarding_may_drop("-P FORWARD DROP\n"));
        assert!(forwarding_may_drop(
            "-P FORWARD ACCEPT\n-A FORWARD -j DOCKER-USER\n"
        ));
    }

    #[test]
    fn sshd_keeps_bash_from_sourcing_bashrc_and_sshd_accepts_the_config() {
        let dir =
            std::env::temp_dir().join(format!("faultline-sshd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("ssh_host_ed25519_key");
        let config = sshd_config(
            "127.0.0.1",
            &key,
            &dir.join("sshd.pid"),
            &dir.join("authorized_keys"),
        );
        assert!(config.lines().any(|l| l == "SetEnv SHLVL=1"), "{config}");
        assert!(
            config.starts_with("ListenAddress 127.0.0.1:22\n"),
            "{config}"
        );
        // sshd itself parses it (`-t`), when it, its privilege separation directory and
        // ssh-keygen are there.
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .stdin(Stdio::null())
            .output();
        if keygen.is_ok_and(|o| o.status.success())
            && Path::new(SSHD).exists()
            && Path::new("/run/sshd").is_dir()
        {
            let file = dir.join("sshd_config");
            std::fs::write(&file, &config).unwrap();
            let out = Command::new(SSHD)
                .arg("-t")
                .arg("-f")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "sshd -t: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_planned_lab_names_every_object_and_has_no_subnet_yet() {
        let state = LabState::planned("t1", 3, PathBuf::from("/x/t1"));
        assert_eq!(state.bridge, "flbr-t1");
        assert_eq!(state.hosts[2].namespace, "fl-t1-n3");
        assert_eq!(state.hosts[2].veth, "flv-t1-3");
        assert_eq!(state.hosts[2].name, "n3");
        assert_eq!(state.subnet, None);
        assert!(!state.complete);
        let text = serde_json::to_string(&state).unwrap();
        let back: LabState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
    }
}
