//! The target file (`--target-file store.toml`): read, checked, and turned into templates.
//!
//! Everything a user can get wrong is caught here, before a directory is created or a process
//! started: TOML syntax (with line and column), unknown keys, a placeholder a context does not
//! know, a port or variable that is not declared, an upload whose source does not exist, a
//! client that is neither a program nor HTTP. The format is documented in `docs/byo-store.md`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use faultline_core::remote::Command;

use super::template::Template;

/// The node count of a local cluster when neither `--nodes` nor the file's `nodes` says.
pub const DEFAULT_NODES: usize = 3;
/// How long setup waits for a node's readiness probe when the file does not say.
pub const DEFAULT_READY_TIMEOUT_MS: u64 = 30_000;
/// The longest readiness wait a file may ask for.
pub const MAX_READY_TIMEOUT_MS: u64 = 600_000;
/// The largest target file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Placeholders of commands that run on a node (setup, start, its environment, teardown, the
/// readiness command, log paths, upload destinations), besides `port.*` and `var.*`.
pub const NODE_PLACEHOLDERS: [&str; 8] = [
    "name", "node", "id", "address", "nodes", "dir", "data_dir", "peers",
];
/// Placeholders of `start.peer` (one entry of `{peers}`, about that peer), besides `port.*`.
pub const PEER_PLACEHOLDERS: [&str; 3] = ["node", "id", "address"];
/// Placeholders of the client command (run on this machine, for the worker's node), besides
/// `port.*` and `var.*`.
pub const CLIENT_PLACEHOLDERS: [&str; 6] = ["name", "node", "id", "address", "nodes", "target_dir"];
/// Placeholders of an HTTP request's path and body (the operation), besides `value.N` (the
/// N-th element of a list value: `{value.0}` is a cas's expected value).
pub const REQUEST_PLACEHOLDERS: [&str; 2] = ["key", "value"];

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    nodes: Option<usize>,
    nemesis: Option<Vec<String>>,
    workloads: Option<Vec<String>>,
    #[serde(default)]
    ports: BTreeMap<String, u16>,
    peer_port: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    upload: Vec<RawUpload>,
    #[serde(default)]
    setup: Vec<RawCommand>,
    start: RawStart,
    ready: Option<RawReady>,
    #[serde(default)]
    teardown: Vec<RawCommand>,
    #[serde(default)]
    logs: Vec<String>,
    client: RawClient,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpload {
    from: String,
    to: String,
}

/// A command: an argv list (no shell) or one string run by `sh -c`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStart {
    command: RawCommand,
    #[serde(default)]
    env: BTreeMap<String, String>,
    peer: Option<String>,
    peer_separator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    tcp: Option<String>,
    command: Option<RawCommand>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    command: Option<RawCommand>,
    http: Option<RawHttp>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RawHttp {
    port: String,
    /// One table per operation name (`read`, `write`, `cas`, `add`, ...).
    #[serde(flatten)]
    ops: BTreeMap<String, RawRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: Option<String>,
    path: String,
    body: Option<toml::Value>,
    value: Option<String>,
    #[serde(default)]
    not_found: Vec<u16>,
    #[serde(default)]
    fail: Vec<u16>,
    #[serde(default)]
    compare_failed: Vec<u16>,
}

// ---------------------------------------------------------------------------------------------
// The file as checked.

/// A command with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTemplate {
    /// Program and arguments, each rendered as is: no shell, nothing to escape.
    Argv(Vec<Template>),
    /// A line for `sh -c`, each placeholder's value single-quoted.
    Shell(Template),
}

impl CommandTemplate {
    fn from_raw(raw: &RawCommand, what: &str) -> Result<CommandTemplate, String> {
        match raw {
            RawCommand::Argv(words) => {
                if words.is_empty() {
                    return Err(format!("{what}: an empty command"));
                }
                let words = words
                    .iter()
                    .map(|w| Template::parse(w).map_err(|e| format!("{what}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(CommandTemplate::Argv(words))
            }
            RawCommand::Shell(line) => {
                if line.trim().is_empty() {
                    return Err(format!("{what}: an empty command"));
                }
                Ok(CommandTemplate::Shell(
                    Template::parse(line).map_err(|e| format!("{what}: {e}"))?,
                ))
            }
        }
    }

    fn templates(&self) -> Vec<&Template> {
        match self {
            CommandTemplate::Argv(words) => words.iter().collect(),
            CommandTemplate::Shell(line) => vec![line],
        }
    }

    /// The command with every placeholder filled in.
    pub fn render(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
        match self {
            CommandTemplate::Argv(words) => {
                let mut words = words
                    .iter()
                    .map(|w| w.render(lookup))
                    .collect::<Result<Vec<_>, _>>()?;
                let program = words.remove(0);
                if program.is_empty() {
                    return Err("the command's program renders empty".into());
                }
                Ok(Command {
                    program,
                    args: words,
                    stdin: None,
                })
            }
            CommandTemplate::Shell(line) => Ok(Command {
                program: "sh".into(),
                args: vec!["-c".into(), line.render_shell(lookup)?],
                stdin: None,
            }),
        }
    }
}

/// A file copied to every node before its setup commands.
#[derive(Debug, Clone)]
pub struct Upload {
    /// On this machine (absolute).
    pub from: PathBuf,
    /// On the node.
    pub to: Template,
}

/// How setup knows a node serves.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A TCP connection from this machine to the node's port of that name is accepted.
    Tcp(String),
    /// The command, run on the node, exits 0.
    Command(CommandTemplate),
    /// Ready once the process runs.
    Running,
}

/// The node's server process.
#[derive(Debug, Clone)]
pub struct Start {
    pub command: CommandTemplate,
    pub env: Vec<(String, Template)>,
    /// One entry of `{peers}`.
    pub peer: Template,
    pub peer_separator: String,
}

/// The client: a JSON Lines program, or HTTP requests.
#[derive(Debug, Clone)]
pub enum ClientSpec {
    JsonLines { command: CommandTemplate },
    Http(HttpSpec),
}

/// The HTTP/JSON client: which port, and a request per operation.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub port: String,
    pub ops: BTreeMap<String, RequestSpec>,
}

/// A JSON body with placeholders in its strings.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    Text(Template),
    Array(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
    /// Numbers, booleans: as written.
    Literal(Value),
}

/// One operation's HTTP request, and what its answers mean.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    pub path: Template,
    pub body: Option<BodyTemplate>,
    /// A JSON pointer to the result in a 2xx reply to a read (`/value`).
    pub value: String,
    /// Statuses that mean: ok, never written (null). For reads.
    pub not_found: Vec<u16>,
    /// Statuses that mean: certainly not done.
    pub fail: Vec<u16>,
    /// Statuses that mean: a cas whose comparison ran and did not match.
    pub compare_failed: Vec<u16>,
}

/// A checked target file.
#[derive(Debug, Clone)]
pub struct TargetFile {
    /// The file (absolute).
    pub path: PathBuf,
    /// Its directory: relative paths in it (uploads) and `{target_dir}` start here.
    pub dir: PathBuf,
    pub name: String,
    pub nodes: usize,
    pub nemesis: Option<Vec<String>>,
    pub workloads: Option<Vec<String>>,
    /// Port name -> the port it has on remote hosts (local nodes get free ports), by name.
    pub ports: Vec<(String, u16)>,
    /// The port the nodes reach each other on (proxied locally, so partitions can cut it).
    pub peer_port: Option<String>,
    /// Variables and their defaults.
    pub vars: BTreeMap<String, String>,
    pub uploads: Vec<Upload>,
    pub setup: Vec<CommandTemplate>,
    pub start: Start,
    pub probe: Probe,
    pub ready_timeout_ms: u64,
    pub teardown: Vec<CommandTemplate>,
    pub logs: Vec<Template>,
    pub client: ClientSpec,
    /// Per-request timeout of the client; `None` = derived from the op timeout.
    pub client_timeout_ms: Option<u64>,
}

/// Whether `name` is a target, port or variable name: a letter first, then letters, digits,
/// `_` and `-`.
fn valid_identifier(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a context's placeholders may be: fixed names, `port.<declared>`, `var.<declared>`.
struct Known<'a> {
    names: &'a [&'a str],
    ports: bool,
    vars: bool,
    file: &'a RawFile,
}

impl Known<'_> {
    fn accepts(&self, name: &str) -> bool {
        if self.names.contains(&name) {
            return true;
        }
        match name.split_once('.') {
            Some(("port", port)) if self.ports => self.file.ports.contains_key(port),
            Some(("var", var)) if self.vars => self.file.vars.contains_key(var),
            Some(("value", index)) if self.names.contains(&"value") => {
                index.parse::<usize>().is_ok()
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        let mut all: Vec<String> = self.names.iter().map(|n| format!("{{{n}}}")).collect();
        if self.ports {
            all.extend(self.file.ports.keys().map(|p| format!("{{port.{p}}}")));
        }
        if self.vars {
            all.extend(self.file.vars.keys().map(|v| format!("{{var.{v}}}")));
        }
        if self.names.contains(&"value") {
            all.push("{value.N}".into());
        }
        all.join(", ")
    }

    fn check(&self, context: &str, template: &Template) -> Result<(), String> {
        template.check(context, |n| self.accepts(n), &self.describe())
    }
}

fn body_template(value: &Value, what: &str) -> Result<BodyTemplate, String> {
    Ok(match value {
        Value::String(s) => {
            BodyTemplate::Text(Template::parse(s).map_err(|e| format!("{what}: {e}"))?)
        }
        Value::Array(items) => BodyTemplate::Array(
            items
                .iter()
                .map(|v| body_template(v, what))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => BodyTemplate::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), body_template(v, what)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => BodyTemplate::Literal(other.clone()),
    })
}

impl BodyTemplate {
    fn templates(&self) -> Vec<&Template> {
        match self {
            BodyTemplate::Text(t) => vec![t],
            BodyTemplate::Array(items) => items.iter().flat_map(|i| i.templates()).collect(),
            BodyTemplate::Object(fields) => {
                fields.iter().flat_map(|(_, v)| v.templates()).collect()
            }
            BodyTemplate::Literal(_) => Vec::new(),
        }
    }

    /// The JSON body: a string that is exactly one placeholder becomes that value itself
    /// (`"{value}"` -> `3`, not `"3"`); other strings get each value's text.
    pub fn render(
        &self,
        json: &dyn Fn(&str) -> Option<Value>,
        text: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Value, String> {
        Ok(match self {
            BodyTemplate::Text(t) => match t.sole_placeholder() {
                Some(name) => {
                    json(name).ok_or_else(|| format!("no value for `{{{name}}}` in the body"))?
                }
                None => Value::String(t.render(text)?),
            },
            BodyTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(json, text))
                    .collect::<Result<_, _>>()?,
            ),
            BodyTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(json, text)?)))
                    .collect::<Result<_, String>>()?,
            ),
            BodyTemplate::Literal(v) => v.clone(),
        })
    }
}

impl TargetFile {
    /// Reads and checks the target file at `path`.
    pub fn load(path: &Path) -> Result<TargetFile, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("{shown}: {e}"))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(format!(
                "{shown}: {size} bytes; a target file has at most {MAX_FILE_BYTES}"
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let path = std::path::absolute(path).map_err(|e| format!("{shown}: {e}"))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        TargetFile::parse(&text, &path, &dir).map_err(|e| format!("{shown}: {e}"))
    }

    /// Checks the text of a target file; `path` names it, `dir` resolves its relative paths.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<TargetFile, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        if !valid_identifier(&raw.name) {
            return Err(format!(
                "name {:?}: a letter, then letters, digits, `_` or `-` (it names the store's \
                 directory)",
                raw.name
            ));
        }
        let nodes = raw.nodes.unwrap_or(DEFAULT_NODES);
        if !(1..=crate::cluster::MAX_NODES).contains(&nodes) {
            return Err(format!(
                "nodes = {nodes}: between 1 and {}",
                crate::cluster::MAX_NODES
            ));
        }
        for name in raw.ports.keys().chain(raw.vars.keys()) {
            if !valid_identifier(name) {
                return Err(format!(
                    "{name:?}: port and variable names are a letter, then letters, digits, `_` \
                     or `-`"
                ));
            }
        }
        if let Some((name, _)) = raw.ports.iter().find(|(_, &port)| port == 0) {
            return Err(format!("ports.{name} = 0: a port is 1 to 65535"));
        }
        let mut seen = BTreeSet::new();
        for (name, port) in &raw.ports {
            if !seen.insert(port) {
                return Err(format!(
                    "ports.{name} = {port}: another port has that number"
                ));
            }
        }
        if let Some(peer) = &raw.peer_port {
            if !raw.ports.contains_key(peer) {
                return Err(format!(
                    "peer_port = {peer:?}: not one of the ports ({})",
                    raw.ports.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let node = Known {
            names: &NODE_PLACEHOLDERS,
            ports: true,
            vars: true,
            file: &raw,
        };
        let command = |raw_command: &RawCommand, what: &str| -> Result<CommandTemplate, String> {
            let command = CommandTemplate::from_raw(raw_command, what)?;
            for t in command.templates() {
                node.check(what, t)?;
            }
            Ok(command)
        };
        let node_template = |text: &str, what: &str| -> Result<Template, String> {
            let t = Template::parse(text).map_err(|e| format!("{what}: {e}"))?;
            node.check(what, &t)?;
            Ok(t)
        };

        let mut uploads = Vec::new();
        for (i, upload) in raw.upload.iter().enumerate() {
            let what = format!("upload[{i}]");
            let from = dir.join(&upload.from);
            if !from.is_file() {
                return Err(format!(
                    "{what}: from = {:?}: no such file ({})",
                    upload.from,
                    from.display()
                ));
            }
            uploads.push(Upload {
                from,
                to: node_template(&upload.to, &format!("{what}.to"))?,
            });
        }
        let setup = raw
            .setup
            .iter()
            .enumerate()
            .map(|(i, c)| command(c, &format!("setup[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let teardown = raw
            .teardown
            .iter()
            .enumerate()
            .map(|(i, c)| command(c, &format!("teardown[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let logs = raw
            .logs
            .iter()
            .enumerate()
            .map(|(i, l)| node_template(l, &format!("logs[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;

        let start_command = command(&raw.start.command, "start.command")?;
        let mut env = Vec::new();
        for (key, value) in &raw.start.env {
            let name_ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                return Err(format!(
                    "start.env: {key:?} is not an environment variable name"
                ));
            }
            env.push((
                key.clone(),
                node_template(value, &format!("start.env.{key}"))?,
            ));
        }
        let peer_default = match &raw.peer_port {
            Some(port) => format!("{{node}}={{address}}:{{port.{port}}}"),
            None => "{node}={address}".to_string(),
        };
        let peer = Template::parse(raw.start.peer.as_deref().unwrap_or(&peer_default))
            .map_err(|e| format!("start.peer: {e}"))?;
        Known {
            names: &PEER_PLACEHOLDERS,
            ports: true,
            vars: false,
            file: &raw,
        }
        .check("start.peer", &peer)?;
        let start = Start {
            command: start_command,
            env,
            peer,
            peer_separator: raw.start.peer_separator.clone().unwrap_or(",".into()),
        };

        let (probe, ready_timeout_ms) = match &raw.ready {
            None => (Probe::Running, DEFAULT_READY_TIMEOUT_MS),
            Some(ready) => {
                let probe = match (&ready.tcp, &ready.command) {
                    (Some(_), Some(_)) => {
                        return Err("ready: either tcp or command, not both".into())
                    }
                    (Some(port), None) => {
                        if !raw.ports.contains_key(port) {
                            return Err(format!("ready.tcp = {port:?}: not one of the ports"));
                        }
                        Probe::Tcp(port.clone())
                    }
                    (None, Some(c)) => Probe::Command(command(c, "ready.command")?),
                    (None, None) => Probe::Running,
                };
                let timeout = ready.timeout_ms.unwrap_or(DEFAULT_READY_TIMEOUT_MS);
                if !(1..=MAX_READY_TIMEOUT_MS).contains(&timeout) {
                    return Err(format!(
                        "ready.timeout_ms = {timeout}: 1 to {MAX_READY_TIMEOUT_MS}"
                    ));
                }
                (probe, timeout)
            }
        };

        let client_known = Known {
            names: &CLIENT_PLACEHOLDERS,
            ports: true,
            vars: true,
            file: &raw,
        };
        let client = match (&raw.client.command, &raw.client.http) {
            (Some(_), Some(_)) => return Err("client: either command or http, not both".into()),
            (None, None) => {
                return Err(
                    "client: a command (a JSON Lines program) or an http table is needed".into(),
                )
            }
            (Some(c), None) => {
                let command = CommandTemplate::from_raw(c, "client.command")?;
                for t in command.templates() {
                    client_known.check("client.command", t)?;
                }
                ClientSpec::JsonLines { command }
            }
            (None, Some(http)) => ClientSpec::Http(http_spec(http, &raw)?),
        };
        if raw.client.timeout_ms == Some(0) {
            return Err("client.timeout_ms must be positive".into());
        }
        Ok(TargetFile {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            name: raw.name.clone(),
            nodes,
            nemesis: raw.nemesis.clone(),
            workloads: raw.workloads.clone(),
            ports: raw.ports.iter().map(|(n, p)| (n.clone(), *p)).collect(),
            peer_port: raw.peer_port.clone(),
            vars: raw.vars.clone(),
            uploads,
            setup,
            start,
            probe,
            ready_timeout_ms,
            teardown,
            logs,
            client,
            client_timeout_ms: raw.client.timeout_ms,
        })
    }

    /// The variables with `overrides` applied; an override of an undeclared variable is an
    /// error naming the declared ones.
    pub fn vars_with(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut vars = self.vars.clone();
        for (name, value) in overrides {
            match vars.get_mut(name) {
                Some(slot) => *slot = value.clone(),
                None => {
                    return Err(format!(
                        "variable {name:?} is not declared in {} (its [vars]: {})",
                        self.path.display(),
                        if self.vars.is_empty() {
                            "none".to_string()
                        } else {
                            self.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ))
                }
            }
        }
        Ok(vars)
    }
}

fn http_spec(http: &RawHttp, raw: &RawFile) -> Result<HttpSpec, String> {
    if !raw.ports.contains_key(&http.port) {
        return Err(format!(
            "client.http.port = {:?}: not one of the ports",
            http.port
        ));
    }
    let known = Known {
        names: &REQUEST_PLACEHOLDERS,
        ports: false,
        vars: false,
        file: raw,
    };
    let mut ops = BTreeMap::new();
    for (f, request) in &http.ops {
        let what = format!("client.http.{f}");
        let method = request.method.clone().unwrap_or_else(|| "POST".into());
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "{what}.method = {method:?}: an HTTP method such as GET"
            ));
        }
        if !request.path.starts_with('/') {
            return Err(format!("{what}.path = {:?}: starts with /", request.path));
        }
        let path = Template::parse(&request.path).map_err(|e| format!("{what}.path: {e}"))?;
        known.check(&format!("{what}.path"), &path)?;
        let body = match &request.body {
            None => None,
            Some(body) => {
                let json = serde_json::to_value(body)
                    .map_err(|e| format!("{what}.body: not JSON: {e}"))?;
                let body = body_template(&json, &format!("{what}.body"))?;
                for t in body.templates() {
                    known.check(&format!("{what}.body"), t)?;
                }
                Some(body)
            }
        };
        let value = request.value.clone().unwrap_or_else(|| "/value".into());
        if !(value.is_empty() || value.starts_with('/')) {
            return Err(format!(
                "{what}.value = {value:?}: a JSON pointer such as /value (\"\" = the whole reply)"
            ));
        }
        ops.insert(
            f.clone(),
            RequestSpec {
                method,
                path,
                body,
                value,
                not_found: request.not_found.clone(),
                fail: request.fail.clone(),
                compare_failed: request.compare_failed.clone(),
            },
        );
    }
    if ops.is_empty() {
        return Err("client.http: no operation (add [client.http.read], ...)".into());
    }
    Ok(HttpSpec {
        port: http.port.clone(),
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TargetFile, String> {
        TargetFile::parse(text, Path::new("/x/store.toml"), Path::new("/x"))
    }

    const MINIMAL: &str = r#"
name = "tiny"
[ports]
client = 9000
peer = 9001
[vars]
mode = "fast"
[start]
command = ["server", "--listen", "{address}:{port.client}", "--peers", "{peers}", "--mode", "{var.mode}"]
[client]
command = ["client", "{address}:{port.client}"]
"#;

    #[test]
    fn a_minimal_file_gets_its_defaults() {
        let file = parse(MINIMAL).unwrap();
        assert_eq!(file.name, "tiny");
        assert_eq!(file.nodes, DEFAULT_NODES);
        assert_eq!(file.ports, [("client".into(), 9000), ("peer".into(), 9001)]);
        assert!(matches!(file.probe, Probe::Running));
        assert_eq!(file.start.peer.source(), "{node}={address}");
        let vars = file
            .vars_with(&[("mode".to_string(), "safe".to_string())].into())
            .unwrap();
        assert_eq!(vars["mode"], "safe");
        let err = file
            .vars_with(&[("colour".to_string(), "red".to_string())].into())
            .unwrap_err();
        assert!(
            err.contains("not declared") && err.contains("mode"),
            "{err}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases: [(&str, &str); 10] = [
            ("name = \"x\"\n[start]\ncommand = [\"a\"]\n[client]\ncommand = [\"c\"]\ncolour = 1", "colour"),
            ("name = \"a b\"\n[start]\ncommand = [\"a\"]\n[client]\ncommand = [\"c\"]", "name"),
            ("name = \"x\"\n[start]\ncommand = [\"a\", \"{port.nope}\"]\n[client]\ncommand = [\"c\"]", "{port.nope}"),
            ("name = \"x\"\n[start]\ncommand = [\"a\", \"{key}\"]\n[client]\ncommand = [\"c\"]", "start.command"),
            ("name = \"x\"\n[start]\ncommand = [\"a\"]\n[client]\ncommand = [\"c\", \"{peers}\"]", "client.command"),
            ("name = \"x\"\n[start]\ncommand = []\n[client]\ncommand = [\"c\"]", "empty command"),
            ("name = \"x\"\n[start]\ncommand = [\"a\"]\n[client]\ntimeout_ms = 5", "client: a command"),
            ("name = \"x\"\npeer_port = \"p\"\n[start]\ncommand = [\"a\"]\n[client]\ncommand = [\"c\"]", "peer_port"),
            ("name = \"x\"\n[start]\ncommand = [\"a\"]\nenv = { \"A=B\" = \"1\" }\n[client]\ncommand = [\"c\"]", "environment variable"),
            ("name = \"x\"\n[[upload]]\nfrom = \"missing.py\"\nto = \"{dir}/m.py\"\n[start]\ncommand = [\"a\"]\n[client]\ncommand = [\"c\"]", "no such file"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let err = parse("name = [").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn shell_commands_quote_their_values() {
        let text = MINIMAL.replace(
            "command = [\"server\", \"--listen\", \"{address}:{port.client}\", \"--peers\", \"{peers}\", \"--mode\", \"{var.mode}\"]",
            "command = \"exec server --peers {peers} > {dir}/out\"",
        );
        let file = parse(&text).unwrap();
        let lookup = |n: &str| match n {
            "peers" => Some("n1=a b".to_string()),
            "dir" => Some("/tmp/x y".to_string()),
            _ => None,
        };
        let command = file.start.command.render(&lookup).unwrap();
        assert_eq!(command.program, "sh");
        assert_eq!(
            command.args,
            ["-c", "exec server --peers 'n1=a b' > '/tmp/x y'/out"]
        );
    }

    #[test]
    fn http_requests_are_checked_and_bodies_keep_json_types() {
        let text = r#"
name = "h"
[ports]
api = 80
[start]
command = ["srv"]
[client.http]
port = "api"
[client.http.read]
method = "GET"
path = "/kv/{key}"
not_found = [404]
[client.http.cas]
path = "/kv/{key}"
body = { expected = "{value.0}", new = "{value.1}", note = "key {key}", n = 1 }
compare_failed = [412]
"#;
        let file = parse(text).unwrap();
        let ClientSpec::Http(http) = &file.client else {
            panic!("http client")
        };
        assert_eq!(http.ops["read"].method, "GET");
        assert_eq!(http.ops["cas"].method, "POST");
        let values = serde_json::json!([3, null]);
        let json = |name: &str| match name {
            "value.0" => Some(values[0].clone()),
            "value.1" => Some(values[1].clone()),
            _ => None,
        };
        let text = |name: &str| (name == "key").then(|| "7".to_string());
        let body = http.ops["cas"]
            .body
            .as_ref()
            .unwrap()
            .render(&json, &text)
            .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"expected": 3, "new": null, "note": "key 7", "n": 1})
        );
        let bad = text_with("path = \"/kv/{peers}\"");
        assert!(parse(&bad).unwrap_err().contains("{peers}"));
    }

    fn text_with(path_line: &str) -> String {
        format!(
            "name = \"h\"\n[ports]\napi = 80\n[start]\ncommand = [\"srv\"]\n[client.http]\nport = \
             \"api\"\n[client.http.read]\n{path_line}\n"
        )
    }
}
