//! What to run: the workload settings, their parsing, and their limits.
//!
//! One parser serves the command line and workload files: every setting has a key
//! (`value_size`, `mix`, ...) and a text value, and [`Settings::apply`] turns the text into
//! the typed field or a clear error. A workload file is a list of `key = value` lines (a
//! subset of TOML: `#` comments, optional double quotes, no sections); command-line flags
//! are applied after the file, so they override it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Every setting has an upper bound, so a typo cannot ask for a million connections.
pub mod limits {
    use std::time::Duration;

    pub const HOSTS_MAX: usize = 64;
    pub const CONNECTIONS_MAX: usize = 10_000;
    pub const THREADS_MAX: usize = 256;
    pub const OUTSTANDING_MAX: usize = 4_096;
    pub const MAX_IN_FLIGHT_MAX: usize = 65_536;
    pub const KEYS_MAX: u64 = 10_000_000;
    /// ZooKeeper's default `jute.maxbuffer` is 0xfffff bytes for a whole packet.
    pub const VALUE_SIZE_MAX: usize = 1_000_000;
    pub const RATE_MAX: f64 = 10_000_000.0;
    pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
    pub const WARMUP_MAX: Duration = Duration::from_secs(3600);
    pub const MULTI_SIZE_MAX: usize = 100;
    pub const WATCHERS_MAX: usize = 10_000;
    pub const ROUNDS_MAX: u64 = 10_000_000;
    pub const MIX_WEIGHT_MAX: u32 = 1_000_000;
    pub const SESSION_TIMEOUT_MAX: Duration = Duration::from_secs(600);
    pub const PREFIX_LEN_MAX: usize = 200;
    pub const WORKLOAD_FILE_LEN_MAX: usize = 64 * 1024;
}

/// A setting that could not be understood. The message names the setting and the bad
/// value, and says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError(pub String);

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingError {}

fn error<T>(message: impl Into<String>) -> Result<T, SettingError> {
    Err(SettingError(message.into()))
}

/// The operations a mix can contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum OpKind {
    GetData,
    SetData,
    /// Persistent create of a fresh node under `<prefix>/nodes`.
    Create,
    /// Ephemeral create of a fresh node under `<prefix>/nodes`.
    CreateEphemeral,
    /// Persistent sequential create under `<prefix>/nodes`.
    CreateSequential,
    /// Deletes a node this connection created earlier (a create when it has none).
    Delete,
    Exists,
    GetChildren,
    /// `multi_size` setData operations on random keys in one transaction.
    Multi,
}

impl OpKind {
    pub const ALL: [OpKind; 9] = [
        OpKind::GetData,
        OpKind::SetData,
        OpKind::Create,
        OpKind::CreateEphemeral,
        OpKind::CreateSequential,
        OpKind::Delete,
        OpKind::Exists,
        OpKind::GetChildren,
        OpKind::Multi,
    ];

    /// The name used in mixes, reports and file names.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::GetData => "get",
            OpKind::SetData => "set",
            OpKind::Create => "create",
            OpKind::CreateEphemeral => "create-ephemeral",
            OpKind::CreateSequential => "create-sequential",
            OpKind::Delete => "delete",
            OpKind::Exists => "exists",
            OpKind::GetChildren => "children",
            OpKind::Multi => "multi",
        }
    }

    pub fn parse(name: &str) -> Option<OpKind> {
        Some(match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "get" | "getdata" => OpKind::GetData,
            "set" | "setdata" => OpKind::SetData,
            "create" | "create-persistent" => OpKind::Create,
            "create-ephemeral" | "ephemeral" | "create-eph" => OpKind::CreateEphemeral,
            "create-sequential" | "sequential" | "create-seq" => OpKind::CreateSequential,
            "delete" => OpKind::Delete,
            "exists" => OpKind::Exists,
            "children" | "getchildren" | "ls" => OpKind::GetChildren,
            "multi" => OpKind::Multi,
            _ => return None,
        })
    }

    /// Whether the operation reads or writes the pre-created key space.
    pub fn uses_keys(self) -> bool {
        matches!(
            self,
            OpKind::GetData
                | OpKind::SetData
                | OpKind::Exists
                | OpKind::GetChildren
                | OpKind::Multi
        )
    }
}

/// A weighted choice of operations, e.g. `get=90,set=10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// (operation, weight) in the order given; every weight is > 0, no operation twice.
    entries: Vec<(OpKind, u32)>,
    /// Invariant: equals the sum of the weights, and is > 0.
    total_weight: u64,
}

impl Mix {
    pub fn parse(text: &str) -> Result<Mix, SettingError> {
        let valid = || {
            OpKind::ALL
                .iter()
                .map(|op| op.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut entries: Vec<(OpKind, u32)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, weight)) = part.split_once(['=', ':']) else {
                return error(format!(
                    "mix entry `{part}` needs a weight, like `get=90` (operations: {})",
                    valid()
                ));
            };
            let name = name.trim();
            let Some(op) = OpKind::parse(name) else {
                return error(format!(
                    "unknown operation `{name}` in mix (operations: {})",
                    valid()
                ));
            };
            let weight: u32 = match weight.trim().parse() {
                Ok(w) if w <= limits::MIX_WEIGHT_MAX => w,
                _ => {
                    return error(format!(
                        "weight of `{name}` must be a whole number from 0 to {}, not `{}`",
                        limits::MIX_WEIGHT_MAX,
                        weight.trim()
                    ))
                }
            };
            if entries.iter().any(|(seen, _)| *seen == op) {
                return error(format!("operation `{}` appears twice in mix", op.name()));
            }
            if weight > 0 {
                entries.push((op, weight));
            }
        }
        let total_weight: u64 = entries.iter().map(|(_, w)| u64::from(*w)).sum();
        if total_weight == 0 {
            return error(format!(
                "mix `{text}` has no operation with a weight above 0 (example: get=90,set=10)"
            ));
        }
        Ok(Mix {
            entries,
            total_weight,
        })
    }

    pub fn entries(&self) -> &[(OpKind, u32)] {
        &self.entries
    }

    pub fn contains(&self, op: OpKind) -> bool {
        self.entries.iter().any(|(o, _)| *o == op)
    }

    pub fn uses_keys(&self) -> bool {
        self.entries.iter().any(|(op, _)| op.uses_keys())
    }

    /// Maps a uniform draw in `0..total_weight()` to an operation.
    pub fn pick(&self, draw: u64) -> OpKind {
        let mut rest = draw % self.total_weight;
        for (op, weight) in &self.entries {
            let weight = u64::from(*weight);
            if rest < weight {
                return *op;
            }
            rest -= weight;
        }
        // Unreachable while the invariant on total_weight holds.
        self.entries[0].0
    }

    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, weight)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", op.name(), weight)?;
        }
        Ok(())
    }
}

/// How keys are drawn from the key space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    /// Zipfian with exponent `s` (YCSB uses 0.99): key 0 is the hottest.
    Zipfian {
        s: f64,
    },
}

impl KeyDistribution {
    pub const ZIPFIAN_DEFAULT_S: f64 = 0.99;

    pub fn parse(text: &str) -> Result<KeyDistribution, SettingError> {
        let text = text.trim().to_ascii_lowercase();
        if text == "uniform" {
            return Ok(KeyDistribution::Uniform);
        }
        let rest = text
            .strip_prefix("zipfian")
            .or_else(|| text.strip_prefix("zipf"));
        let Some(rest) = rest else {
            return error(format!(
                "unknown key distribution `{text}` (use uniform, zipfian or zipfian:S such as zipfian:0.99)"
            ));
        };
        if rest.is_empty() {
            return Ok(KeyDistribution::Zipfian {
                s: Self::ZIPFIAN_DEFAULT_S,
            });
        }
        let Some(s_text) = rest.strip_prefix([':', '=']) else {
            return error(format!(
                "zipfian parameter must follow a colon, like zipfian:0.99, not `{text}`"
            ));
        };
        match s_text.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 10.0 => Ok(KeyDistribution::Zipfian { s }),
            _ => error(format!(
                "zipfian parameter must be a number above 0 and at most 10, not `{s_text}`"
            )),
        }
    }
}

impl fmt::Display for KeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDistribution::Uniform => f.write_str("uniform"),
            KeyDistribution::Zipfian { s } => write!(f, "zipfian:{s}"),
        }
    }
}

/// Size of the values written: fixed, or uniform in an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSize {
    pub min: usize,
    /// Invariant: min <= max <= limits::VALUE_SIZE_MAX.
    pub max: usize,
}

impl ValueSize {
    pub fn parse(text: &str) -> Result<ValueSize, SettingError> {
        let text = text.trim();
        let parse_one = |t: &str| -> Result<usize, SettingError> {
            match parse_count(t) {
                Some(n) if n <= limits::VALUE_SIZE_MAX as u64 => Ok(n as usize),
                _ => error(format!(
                    "value size `{t}` must be a number of bytes from 0 to {}",
                    limits::VALUE_SIZE_MAX
                )),
            }
        };
        let (min, max) = match text.split_once("..").or_else(|| text.split_once('-')) {
            Some((lo, hi)) => (parse_one(lo.trim())?, parse_one(hi.trim())?),
            None => {
                let n = parse_one(text)?;
                (n, n)
            }
        };
        if min > max {
            return error(format!(
                "value size range `{text}` is empty: its low end is above its high end"
            ));
        }
        Ok(ValueSize { min, max })
    }
}

impl fmt::Display for ValueSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// Which kind of load to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// The weighted operation mix over the key space.
    Mix,
    /// `watchers` sessions watch one node; a writer changes it; time to the last notification.
    Fanout,
    /// Sessions at `rate` per second: connect, create an ephemeral node, close.
    Churn,
}

impl Kind {
    pub fn parse(text: &str) -> Result<Kind, SettingError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mix" => Ok(Kind::Mix),
            "fanout" | "watch-fanout" | "watch_fanout" => Ok(Kind::Fanout),
            "churn" | "session-churn" | "session_churn" => Ok(Kind::Churn),
            other => error(format!(
                "unknown workload kind `{other}` (use mix, fanout or churn)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Mix => "mix",
            Kind::Fanout => "fanout",
            Kind::Churn => "churn",
        }
    }
}

/// All settings of one run, with their defaults. Build with [`Settings::default`], then
/// [`Settings::apply_file`] / [`Settings::apply`], then [`Settings::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub kind: Kind,
    /// host:port pairs; connection `i` goes to `hosts[i % hosts.len()]`.
    pub hosts: Vec<String>,
    pub mix: Mix,
    /// Number of keys pre-created under `<prefix>/keys`.
    pub keys: u64,
    pub key_distribution: KeyDistribution,
    pub value_size: ValueSize,
    /// Sessions for the mix (fanout: the watchers are their own sessions).
    pub connections: usize,
    /// Worker threads; 0 means one per core (at most one per connection).
    pub threads: usize,
    /// Closed loop: requests in flight per connection.
    pub outstanding: usize,
    /// Open loop when set: operations per second over all connections (churn: sessions per
    /// second; fanout: rounds per second).
    pub rate: Option<f64>,
    /// Open loop: requests in flight per connection before requests queue in the loadgen.
    pub max_in_flight: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Stop issuing after this many operations in total (0: no limit but the duration).
    pub max_ops: u64,
    pub multi_size: usize,
    pub prefix: String,
    /// Keep the key space after the run instead of deleting it.
    pub keep: bool,
    pub session_timeout: Duration,
    /// After the duration, how long to wait for replies still in flight.
    pub drain_timeout: Duration,
    /// Fanout: number of watching sessions.
    pub watchers: usize,
    /// Fanout: at most this many rounds (each round: arm watches, write, collect).
    pub rounds: u64,
    /// Seed for the random choices; random when unset.
    pub seed: Option<u64>,
    /// Mix: a session whose connection breaks (or that hears nothing from its server for
    /// two thirds of the session timeout while waiting) opens a new session on the next
    /// host of the list, in the background, instead of staying dead. Its requests in flight
    /// count as `ConnectionLost`.
    pub reconnect: bool,
    /// Mix: record every completed operation with its completion time (the `--timeline`
    /// output); not a setting of its own.
    pub timeline: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            kind: Kind::Mix,
            hosts: vec!["127.0.0.1:2181".to_string()],
            mix: Mix::parse("get=90,set=10").expect("the default mix parses"),
            keys: 1_000,
            key_distribution: KeyDistribution::Uniform,
            value_size: ValueSize { min: 100, max: 100 },
            connections: 8,
            threads: 0,
            outstanding: 1,
            rate: None,
            max_in_flight: 1_024,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            max_ops: 0,
            multi_size: 2,
            prefix: "/zkrs-loadgen".to_string(),
            keep: false,
            session_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            watchers: 100,
            rounds: 1_000_000,
            seed: None,
            reconnect: false,
            timeline: false,
        }
    }
}

/// The keys [`Settings::apply`] understands (dashes and underscores are interchangeable).
pub const SETTING_KEYS: [&str; 24] = [
    "kind",
    "hosts",
    "mix",
    "keys",
    "key_distribution",
    "value_size",
    "connections",
    "threads",
    "outstanding",
    "rate",
    "max_in_flight",
    "duration",
    "warmup",
    "max_ops",
    "multi_size",
    "prefix",
    "keep",
    "session_timeout",
    "drain_timeout",
    "watchers",
    "rounds",
    "seed",
    "distribution",
    "reconnect",
];

impl Settings {
    /// Sets one setting from its text form.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let key = key.trim().to_ascii_lowercase().replace('-', "_");
        let value = value.trim();
        let in_key = |e: SettingError| SettingError(format!("{key}: {}", e.0));
        match key.as_str() {
            "kind" => self.kind = Kind::parse(value)?,
            "hosts" => self.hosts = parse_hosts(value)?,
            "mix" => self.mix = Mix::parse(value).map_err(in_key)?,
            "keys" => self.keys = parse_bounded(&key, value, 1, limits::KEYS_MAX)?,
            "key_distribution" | "distribution" => {
                self.key_distribution = KeyDistribution::parse(value).map_err(in_key)?
            }
            "value_size" => self.value_size = ValueSize::parse(value).map_err(in_key)?,
            "connections" => {
                self.connections =
                    parse_bounded(&key, value, 1, limits::CONNECTIONS_MAX as u64)? as usize
            }
            "threads" => {
                self.threads = parse_bounded(&key, value, 0, limits::THREADS_MAX as u64)? as usize
            }
            "outstanding" => {
                self.outstanding =
                    parse_bounded(&key, value, 1, limits::OUTSTANDING_MAX as u64)? as usize
            }
            "rate" => {
                self.rate = match value {
                    "" | "none" | "closed" => None,
                    _ => Some(parse_rate(value).map_err(in_key)?),
                }
            }
            "max_in_flight" => {
                self.max_in_flight =
                    parse_bounded(&key, value, 1, limits::MAX_IN_FLIGHT_MAX as u64)? as usize
            }
            "duration" => {
                self.duration = parse_duration(value).map_err(in_key)?;
                if self.duration.is_zero() || self.duration > limits::DURATION_MAX {
                    return error(format!(
                        "duration must be above 0 and at most {}s, not `{value}`",
                        limits::DURATION_MAX.as_secs()
                    ));
                }
            }
            "warmup" => {
                self.warmup = parse_duration(value).map_err(in_key)?;
                if self.warmup > limits::WARMUP_MAX {
                    return error(format!(
                        "warmup must be at most {}s, not `{value}`",
                        limits::WARMUP_MAX.as_secs()
                    ));
                }
            }
            "max_ops" => self.max_ops = parse_bounded(&key, value, 0, u64::MAX / 2)?,
            "multi_size" => {
                self.multi_size =
                    parse_bounded(&key, value, 1, limits::MULTI_SIZE_MAX as u64)? as usize
            }
            "prefix" => self.prefix = parse_prefix(value)?,
            "keep" => self.keep = parse_bool(&key, value)?,
            "session_timeout" => {
                self.session_timeout = parse_duration(value).map_err(in_key)?;
                if self.session_timeout < Duration::from_millis(100)
                    || self.session_timeout > limits::SESSION_TIMEOUT_MAX
                {
                    return error(format!(
                        "session_timeout must be from 100ms to {}s, not `{value}`",
                        limits::SESSION_TIMEOUT_MAX.as_secs()
                    ));
                }
            }
            "drain_timeout" => {
                self.drain_timeout = parse_duration(value).map_err(in_key)?;
                if self.drain_timeout > Duration::from_secs(600) {
                    return error(format!("drain_timeout must be at most 600s, not `{value}`"));
                }
            }
            "watchers" => {
                self.watchers = parse_bounded(&key, value, 1, limits::WATCHERS_MAX as u64)? as usize
            }
            "rounds" => self.rounds = parse_bounded(&key, value, 1, limits::ROUNDS_MAX)?,
            "seed" => self.seed = Some(parse_bounded(&key, value, 0, u64::MAX)?),
            "reconnect" => self.reconnect = parse_bool(&key, value)?,
            _ => {
                return error(format!(
                    "unknown setting `{key}` (known: {})",
                    SETTING_KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Applies a workload file: `key = value` lines, `#` comments, blank lines.
    /// `source` names the file in error messages.
    pub fn apply_file(&mut self, text: &str, source: &str) -> Result<(), SettingError> {
        if text.len() > limits::WORKLOAD_FILE_LEN_MAX {
            return error(format!(
                "{source}: workload file is over {} bytes",
                limits::WORKLOAD_FILE_LEN_MAX
            ));
        }
        for (index, raw) in text.lines().enumerate() {
            let line_number = index + 1;
            let at =
                |message: String| SettingError(format!("{source} line {line_number}: {message}"));
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                return Err(at(format!(
                    "sections like `{line}` are not supported; write plain `key = value` lines"
                )));
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(at(format!("expected `key = value`, found `{line}`")));
            };
            let value = unquote(value.trim()).map_err(|e| at(e.0))?;
            self.apply(key, &value).map_err(|e| at(e.0))?;
        }
        Ok(())
    }

    /// Cross-field checks, once everything is applied.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.hosts.is_empty() {
            return error("hosts: at least one host:port is needed");
        }
        if self.kind == Kind::Mix
            && self.mix.contains(OpKind::Multi)
            && self.multi_size as u64 > self.keys
        {
            return error(format!(
                "multi_size {} is above keys {}: a multi touches distinct keys",
                self.multi_size, self.keys
            ));
        }
        if self.kind == Kind::Churn && self.rate.is_none() {
            return error("churn needs rate (sessions per second), e.g. --rate 100");
        }
        Ok(())
    }

    /// The settings as `key = value` lines: a workload file that reproduces this run.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("kind", self.kind.name().to_string()),
            ("hosts", self.hosts.join(",")),
        ];
        match self.kind {
            Kind::Mix => {
                pairs.push(("mix", self.mix.to_string()));
                pairs.push(("keys", self.keys.to_string()));
                pairs.push(("key_distribution", self.key_distribution.to_string()));
                pairs.push(("connections", self.connections.to_string()));
                pairs.push(("outstanding", self.outstanding.to_string()));
                pairs.push(("max_in_flight", self.max_in_flight.to_string()));
                pairs.push(("multi_size", self.multi_size.to_string()));
                pairs.push(("reconnect", self.reconnect.to_string()));
            }
            Kind::Fanout => {
                pairs.push(("watchers", self.watchers.to_string()));
                pairs.push(("rounds", self.rounds.to_string()));
            }
            Kind::Churn => {}
        }
        pairs.push(("value_size", self.value_size.to_string()));
        pairs.push((
            "rate",
            self.rate.map_or("none".to_string(), |r| format!("{r}")),
        ));
        pairs.push(("threads", self.threads.to_string()));
        pairs.push(("duration", format_duration(self.duration)));
        pairs.push(("warmup", format_duration(self.warmup)));
        pairs.push(("max_ops", self.max_ops.to_string()));
        pairs.push(("prefix", self.prefix.clone()));
        pairs.push(("keep", self.keep.to_string()));
        pairs.push(("session_timeout", format_duration(self.session_timeout)));
        pairs.push(("drain_timeout", format_duration(self.drain_timeout)));
        if let Some(seed) = self.seed {
            pairs.push(("seed", seed.to_string()));
        }
        pairs
    }

    /// Threads to use: the setting, or one per core, never more than the sessions.
    pub fn thread_count(&self, sessions: usize) -> usize {
        let wanted = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        wanted.clamp(1, sessions.max(1))
    }
}

fn strip_comment(line: &str) -> &str {
    // A `#` inside double quotes is part of the value.
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(value: &str) -> Result<String, SettingError> {
    match value.strip_prefix('"') {
        None => Ok(value.to_string()),
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains('"') => Ok(inner.to_string()),
            _ => error(format!("unbalanced quotes in `{value}`")),
        },
    }
}

/// `host:port[,host:port...]`. A chroot suffix (`/path`) is not supported.
pub fn parse_hosts(text: &str) -> Result<Vec<String>, SettingError> {
    let mut hosts = Vec::new();
    if text.contains('/') {
        return error(format!(
            "hosts `{text}`: a chroot suffix is not supported; use --prefix instead"
        ));
    }
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((host, port)) = part.rsplit_once(':') else {
            return error(format!("host `{part}` needs a port, like 127.0.0.1:2181"));
        };
        if host.is_empty() {
            return error(format!("host `{part}` has an empty host name"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return error(format!("host `{part}` has a bad port `{port}`")),
        }
        hosts.push(part.to_string());
    }
    if hosts.is_empty() {
        return error("hosts: at least one host:port is needed, like 127.0.0.1:2181");
    }
    if hosts.len() > limits::HOSTS_MAX {
        return error(format!("hosts: at most {} hosts", limits::HOSTS_MAX));
    }
    Ok(hosts)
}

fn parse_prefix(text: &str) -> Result<String, SettingError> {
    let ok = text.starts_with('/')
        && text.len() > 1
        && text.len() <= limits::PREFIX_LEN_MAX
        && !text.ends_with('/')
        && !text.contains("//")
        && text.split('/').skip(1).all(|c| c != "." && c != "..")
        && text.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        return error(format!(
            "prefix `{text}` must be an absolute ZooKeeper path other than /, like /zkrs-loadgen \
             (no trailing slash, no empty, `.` or `..` components, printable ASCII)"
        ));
    }
    Ok(text.to_string())
}

fn parse_bool(key: &str, text: &str) -> Result<bool, SettingError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => error(format!("{key} must be true or false, not `{text}`")),
    }
}

/// A whole number with optional `_` separators and a `k` (thousand) or `m` (million) suffix.
pub fn parse_count(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase().replace('_', "");
    let (digits, multiplier) = if let Some(d) = text.strip_suffix('k') {
        (d, 1_000)
    } else if let Some(d) = text.strip_suffix('m') {
        (d, 1_000_000)
    } else {
        (text.as_str(), 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

fn parse_bounded(key: &str, text: &str, min: u64, max: u64) -> Result<u64, SettingError> {
    match parse_count(text) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => error(format!(
            "{key} must be a whole number from {min} to {max}, not `{text}`"
        )),
    }
}

/// Operations per second: a positive number, `k`/`m` suffixes allowed (`2.5k`).
pub fn parse_rate(text: &str) -> Result<f64, SettingError> {
    let lower = text.trim().to_ascii_lowercase().replace('_', "");
    let (digits, multiplier) = if let Some(d) = lower.strip_suffix('k') {
        (d, 1e3)
    } else if let Some(d) = lower.strip_suffix('m') {
        (d, 1e6)
    } else {
        (lower.as_str(), 1.0)
    };
    match digits.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r * multiplier <= limits::RATE_MAX => Ok(r * multiplier),
        _ => error(format!(
            "rate must be a number of operations per second above 0 and at most {}, like 5000 or 20k, not `{text}`",
            limits::RATE_MAX
        )),
    }
}

/// A duration with a unit: `500us`, `250ms`, `10s`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, SettingError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return error(format!("bad duration `{text}` (example: 10s, 500ms, 1.5m)"));
    }
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return error(format!("`{text}` needs a unit (us, ms, s, m, h), like 10s")),
        other => {
            return error(format!(
                "unknown unit `{other}` in `{text}` (use us, ms, s, m or h)"
            ))
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * seconds_per_unit <= 7.0 * 24.0 * 3600.0 => {
            Ok(Duration::from_secs_f64(n * seconds_per_unit))
        }
        _ => error(format!("bad duration `{text}` (example: 10s, 500ms, 1.5m)")),
    }
}

pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1_000_000) {
        format!("{}s", micros / 1_000_000)
    } else if micros.is_multiple_of(1_000) {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{micros}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of<T: fmt::Debug>(r: Result<T, SettingError>) -> String {
        r.expect_err("should be rejected").0
    }

    #[test]
    fn mix_parses_weights_and_aliases() {
        let mix = Mix::parse("get=90, setData=10,exists:0").unwrap();
        assert_eq!(
            mix.entries(),
            &[(OpKind::GetData, 90), (OpKind::SetData, 10)]
        );
        assert_eq!(mix.total_weight(), 100);
        assert_eq!(mix.to_string(), "get=90,set=10");
        assert!(mix.uses_keys());
        assert!(!Mix::parse("create=1,delete=1").unwrap().uses_keys());
    }

    #[test]
    fn mix_pick_follows_weights() {
        let mix = Mix::parse("get=3,set=1").unwrap();
        let picks: Vec<OpKind> = (0..8).map(|d| mix.pick(d)).collect();
        assert_eq!(
            picks,
            [
                OpKind::GetData,
                OpKind::GetData,
                OpKind::GetData,
                OpKind::SetData,
                OpKind::GetData,
                OpKind::GetData,
                OpKind::GetData,
                OpKind::SetData
            ]
        );
    }

    #[test]
    fn mix_rejects_bad_input_with_clear_messages() {
        assert!(err_of(Mix::parse("gte=90")).contains("unknown operation `gte`"));
        assert!(err_of(Mix::parse("gte=90")).contains("get, set"));
        assert!(err_of(Mix::parse("get")).contains("needs a weight"));
        assert!(err_of(Mix::parse("get=-1")).contains("weight of `get`"));
        assert!(err_of(Mix::parse("get=ten")).contains("not `ten`"));
        assert!(err_of(Mix::parse("get=1,getData=2")).contains("appears twice"));
        assert!(err_of(Mix::parse("get=0")).contains("no operation with a weight"));
        assert!(err_of(Mix::parse("")).contains("no operation"));
    }

    #[test]
    fn distributions_and_value_sizes() {
        assert_eq!(
            KeyDistribution::parse("uniform"),
            Ok(KeyDistribution::Uniform)
        );
        assert_eq!(
            KeyDistribution::parse("zipfian"),
            Ok(KeyDistribution::Zipfian { s: 0.99 })
        );
        assert_eq!(
            KeyDistribution::parse("Zipfian:1.2"),
            Ok(KeyDistribution::Zipfian { s: 1.2 })
        );
        assert!(err_of(KeyDistribution::parse("zipfian:-1")).contains("above 0"));
        assert!(err_of(KeyDistribution::parse("zipfian0.5")).contains("colon"));
        assert!(err_of(KeyDistribution::parse("normal")).contains("unknown key distribution"));

        assert_eq!(
            ValueSize::parse("100"),
            Ok(ValueSize { min: 100, max: 100 })
        );
        assert_eq!(
            ValueSize::parse("10..1k"),
            Ok(ValueSize { min: 10, max: 1000 })
        );
        assert_eq!(ValueSize::parse("0-64"), Ok(ValueSize { min: 0, max: 64 }));
        assert!(err_of(ValueSize::parse("64..10")).contains("empty"));
        assert!(err_of(ValueSize::parse("2000000")).contains("from 0 to 1000000"));
        assert!(err_of(ValueSize::parse("big")).contains("number of bytes"));
    }

    #[test]
    fn durations_rates_counts() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(err_of(parse_duration("10")).contains("needs a unit"));
        assert!(err_of(parse_duration("10y")).contains("unknown unit `y`"));
        assert!(err_of(parse_duration("-1s")).contains("bad duration"));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");

        assert_eq!(parse_rate("20k"), Ok(20_000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(err_of(parse_rate("0")).contains("above 0"));
        assert!(err_of(parse_rate("fast")).contains("not `fast`"));

        assert_eq!(parse_count("1_000"), Some(1000));
        assert_eq!(parse_count("2k"), Some(2000));
        assert_eq!(parse_count("1.5k"), None);
    }

    #[test]
    fn hosts_and_prefix() {
        assert_eq!(
            parse_hosts("127.0.0.1:2181, 127.0.0.1:2182").unwrap(),
            vec!["127.0.0.1:2181", "127.0.0.1:2182"]
        );
        assert!(err_of(parse_hosts("127.0.0.1")).contains("needs a port"));
        assert!(err_of(parse_hosts("127.0.0.1:http")).contains("bad port"));
        assert!(err_of(parse_hosts("127.0.0.1:2181/chroot")).contains("chroot"));
        assert!(err_of(parse_hosts(",")).contains("at least one"));
        let mut s = Settings::default();
        s.apply("prefix", "/a/b").unwrap();
        assert_eq!(s.prefix, "/a/b");
        for bad in ["a", "/", "/a/", "/a//b", "/a/../b"] {
            assert!(err_of(s.apply("prefix", bad)).contains("absolute ZooKeeper path"));
        }
    }

    #[test]
    fn workload_file_then_flags() {
        let file = r#"
            # read-heavy, skewed
            mix = "get=80, set=15, multi=5"
            keys = 10_000
            key-distribution = zipfian:1.1   # hot keys
            value_size = 16..256
            connections = 4
            rate = 2k
            duration = 3s
            warmup = 500ms
        "#;
        let mut s = Settings::default();
        s.apply_file(file, "w.toml").unwrap();
        s.apply("connections", "12").unwrap();
        s.apply("reconnect", "true").unwrap();
        s.validate().unwrap();
        assert!(s.reconnect);
        assert_eq!(s.mix.to_string(), "get=80,set=15,multi=5");
        assert_eq!(s.keys, 10_000);
        assert_eq!(s.key_distribution, KeyDistribution::Zipfian { s: 1.1 });
        assert_eq!(s.value_size, ValueSize { min: 16, max: 256 });
        assert_eq!(s.connections, 12);
        assert_eq!(s.rate, Some(2000.0));
        assert_eq!(s.duration, Duration::from_secs(3));
        assert_eq!(s.warmup, Duration::from_millis(500));

        // The settings written back out read in to the same settings.
        let text: String = s
            .to_pairs()
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\"\n"))
            .collect();
        let mut again = Settings::default();
        again.apply_file(&text, "roundtrip").unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn workload_file_errors_name_the_line() {
        let mut s = Settings::default();
        let e = err_of(s.apply_file("keys = 10\nvaule_size = 3\n", "w.toml"));
        assert!(
            e.starts_with("w.toml line 2: unknown setting `vaule_size`"),
            "{e}"
        );
        let e = err_of(s.apply_file("[workload]\n", "w.toml"));
        assert!(e.contains("line 1") && e.contains("sections"), "{e}");
        let e = err_of(s.apply_file("keys\n", "w.toml"));
        assert!(e.contains("expected `key = value`"), "{e}");
        let e = err_of(s.apply_file("mix = \"get=1\n", "w.toml"));
        assert!(e.contains("unbalanced quotes"), "{e}");
        let e = err_of(s.apply_file("connections = 0\n", "w.toml"));
        assert!(
            e.contains("connections must be a whole number from 1 to 10000, not `0`"),
            "{e}"
        );
        let e = err_of(s.apply_file("mix = get=1,bogus=2\n", "w.toml"));
        assert!(e.contains("line 1: mix: unknown operation `bogus`"), "{e}");
    }

    #[test]
    fn cross_field_validation() {
        let mut s = Settings::default();
        s.apply("mix", "multi=1").unwrap();
        s.apply("keys", "1").unwrap();
        assert!(err_of(s.validate()).contains("multi_size 2 is above keys 1"));
        let mut s = Settings::default();
        s.apply("kind", "churn").unwrap();
        assert!(err_of(s.validate()).contains("churn needs rate"));
        assert!(err_of(s.apply("kind", "storm")).contains("unknown workload kind"));
    }
}
