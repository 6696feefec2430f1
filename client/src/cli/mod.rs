//! `dialctl`: the command line over [`crate::Client`]. Parsing ([`Cli`]), running
//! ([`run`]) and output ([`output`]) live here, in the library, so they can be unit-tested;
//! `src/bin/dialctl.rs` only calls [`main`].
//!
//! Output is stable for scripts and tests. Text output prints a `get`'s value bytes raw, with
//! nothing added (as `etcdctl get --print-value-only`, minus the newline); `--output json`
//! prints one JSON object per command on one line. Exit codes: [`EXIT_OK`],
//! [`EXIT_CONDITION`] (key not found for `get`, condition failed for `cas`), [`EXIT_USAGE`]
//! (clap's own code for usage errors), [`EXIT_ERROR`] (the server or the connection failed;
//! the error, e.g. `INVALID_ARGUMENT key: 5000 bytes is over the limit of 4096 bytes`, is
//! printed on stderr after `dialctl: `).

pub mod output;
pub mod script;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::{
    CallOptions, CasAction, Client, Compare, Condition, ConflictPolicy, Consistency, Error, Level,
    NamespaceSpec, Protocol, ScanRange, Session, SessionGuarantees, Transaction,
    TransactionOptions, TxnOp,
};
use output::{Format, Printer, TxnOutcome};
use script::{ReadResult, ScriptLine, ScriptOp};

/// Success.
pub const EXIT_OK: i32 = 0;
/// `get`: the key does not exist; `cas` and one-shot `txn`: the condition did not hold;
/// interactive `txn`: aborted on every attempt.
pub const EXIT_CONDITION: i32 = 1;
/// The command line is wrong (clap exits with this code too).
pub const EXIT_USAGE: i32 = 2;
/// The server refused the request or could not be reached.
pub const EXIT_ERROR: i32 = 3;

/// The per-call timeout when `--timeout` is not given (but see `cluster add`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The endpoint used when neither `--endpoints` nor `DIALKV_ENDPOINTS` names one.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7401";

/// dialctl: read, write and administer a dialkv cluster.
#[derive(Debug, Parser)]
#[command(name = "dialctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Comma-separated server endpoints (`host:port` or `http://host:port`).
    #[arg(long, global = true, env = "DIALKV_ENDPOINTS", value_delimiter = ',', default_value = DEFAULT_ENDPOINT)]
    pub endpoints: Vec<String>,
    /// The namespace of data commands.
    #[arg(long, short = 'n', global = true, default_value = crate::client::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The consistency level of data commands (the namespace default, linearizable, if unset).
    #[arg(long, global = true, value_enum)]
    pub consistency: Option<LevelArg>,
    /// For bounded-staleness: the largest staleness accepted, in milliseconds.
    #[arg(long, global = true, value_name = "N")]
    pub max_staleness_ms: Option<u64>,
    /// The per-call timeout in seconds (retries included); fractions allowed. Default: 5, and
    /// 150 for `cluster add` (a new replica may take 2 minutes to catch up).
    #[arg(long, global = true, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Run the command in this session (a token printed by an earlier `--output json` run),
    /// with all four session guarantees.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub session_token: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A consistency level as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    /// LINEARIZABLE.
    Linearizable,
    /// SEQUENTIAL.
    Sequential,
    /// CAUSAL.
    Causal,
    /// BOUNDED_STALENESS (needs --max-staleness-ms).
    BoundedStaleness,
    /// EVENTUAL.
    Eventual,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::Linearizable => Level::Linearizable,
            LevelArg::Sequential => Level::Sequential,
            LevelArg::Causal => Level::Causal,
            LevelArg::BoundedStaleness => Level::BoundedStaleness,
            LevelArg::Eventual => Level::Eventual,
        }
    }
}

/// A dialctl command.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Print a key's value (exit 1 when the key does not exist).
    Get {
        /// The key.
        key: String,
    },
    /// Write a key; the value is read from stdin when omitted.
    Put {
        /// The key.
        key: String,
        /// The value (stdin when omitted).
        value: Option<String>,
        /// Quorum namespaces: the causal context of a read (as `get` prints it); the write
        /// supersedes every version that read saw, resolving siblings.
        #[arg(long)]
        context: Option<String>,
    },
    /// Delete a key (prints 1 if it existed, else 0).
    #[command(alias = "delete")]
    Del {
        /// The key.
        key: String,
        /// Quorum namespaces: the causal context of a read; see `put --context`.
        #[arg(long)]
        context: Option<String>,
    },
    /// List keys in [start, end), in key order.
    Scan(ScanArgs),
    /// Compare-and-set: change a key only if a condition holds (exit 1 when it does not).
    Cas(CasArgs),
    /// Namespace administration.
    #[command(subcommand)]
    Ns(NsCommand),
    /// Cluster administration: status and membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run a transaction: an interactive one from a script, or a one-shot --if/--then/--else.
    ///
    /// Interactive (the default): reads a script from --file or stdin, one operation per
    /// line, and runs it as one transaction: reads see one snapshot, writes apply atomically
    /// at commit, and the commit aborts if anything read changed meanwhile (then the whole
    /// script runs again, up to --retries times). Prints each get and scan result, then
    /// `COMMITTED revision N` (exit 0) or `ABORTED REASON ...` (exit 1).
    ///
    ///   # a comment
    ///   get alice            # prints `get alice: VALUE` (or `(not found)`)
    ///   put bob 42           # buffered until commit
    ///   del carol
    ///   scan a z             # keys in [a, z); `scan` alone: every key
    ///   put k "a value"      # quotes for spaces; escapes \" \\ \n \t \xHH
    ///
    /// One-shot (with --if, --then or --else): if every --if holds, the --then ops run,
    /// else the --else ops, as one atomic step. Prints `SUCCESS revision N` (exit 0) or
    /// `FAILURE` (exit 1), then each get's result.
    ///
    ///   dialctl txn --if 'value leader = n1' --if 'exists lease' \
    ///               --then 'put leader n2' --then 'del lease' --else 'get leader'
    ///
    /// Conditions: `exists KEY`, `absent KEY`, `value KEY = VALUE`, `revision KEY = R`.
    /// Ops: `put KEY VALUE`, `del KEY`, `get KEY`.
    ///
    /// Exit codes: 0 committed / compares held, 1 aborted after retries / compares failed,
    /// 2 usage or script error (naming the line), 3 server error (including an
    /// indeterminate commit: it may or may not have applied).
    #[command(verbatim_doc_comment)]
    Txn(TxnArgs),
}

/// Arguments of `txn`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct TxnArgs {
    /// The script of an interactive transaction (`-`: stdin, the default).
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with_all = ["when", "then", "otherwise"])]
    pub file: Option<std::path::PathBuf>,
    /// One-shot: a condition (`exists K`, `absent K`, `value K = V`, `revision K = R`); all
    /// must hold. Repeatable.
    #[arg(long = "if", value_name = "COND", value_parser = script::parse_compare)]
    pub when: Vec<Compare>,
    /// One-shot: an op run when every condition holds (`put K V`, `del K`, `get K`).
    /// Repeatable.
    #[arg(long = "then", value_name = "OP", value_parser = script::parse_txn_op)]
    pub then: Vec<TxnOp>,
    /// One-shot: an op run when a condition does not hold. Repeatable.
    #[arg(long = "else", value_name = "OP", value_parser = script::parse_txn_op)]
    pub otherwise: Vec<TxnOp>,
    /// Interactive: how many times an aborted transaction runs again.
    #[arg(long, value_name = "N", default_value_t = crate::transaction::DEFAULT_MAX_RETRIES, conflicts_with_all = ["when", "then", "otherwise"])]
    pub retries: u32,
}

impl TxnArgs {
    /// Whether this is a one-shot transaction (any of --if, --then, --else given).
    pub fn is_one_shot(&self) -> bool {
        !(self.when.is_empty() && self.then.is_empty() && self.otherwise.is_empty())
    }
}

/// A `cluster` subcommand.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum ClusterCommand {
    /// Show every member (text: a table of ID ADDRESS ROLE VOTER TERM APPLIED LAG_VERSIONS
    /// LAG_MS REACHABLE; `-` where unknown).
    Status,
    /// Add a replica: it catches up as a learner, then joins the voters. Start it first
    /// with `dialkv serve --join`.
    Add {
        /// The new replica's id: unused in the cluster, at least 1.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// The address (host:port) where the new replica serves gRPC.
        #[arg(value_parser = parse_host_port)]
        address: String,
    },
    /// Remove a replica from the voters and the cluster.
    #[command(alias = "rm")]
    Remove {
        /// The replica's id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
}

/// Arguments of `scan`.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct ScanArgs {
    /// The first key, inclusive (default: the first key).
    #[arg(long)]
    pub start: Option<String>,
    /// The end key, exclusive (default: the end of the namespace).
    #[arg(long)]
    pub end: Option<String>,
    /// The most keys to print (one page; with --all, the page size), 1..=10000.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Follow continuations and print every key of the range.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `cas`.
#[derive(Debug, Args, PartialEq, Eq)]
#[command(group(clap::ArgGroup::new("condition").required(true).args(["expect_revision", "expect_value", "expect_absent"])))]
#[command(group(clap::ArgGroup::new("action").required(true).args(["value", "delete"])))]
pub struct CasArgs {
    /// The key.
    pub key: String,
    /// Condition: the key exists at this revision.
    #[arg(long, value_name = "R")]
    pub expect_revision: Option<u64>,
    /// Condition: the key exists with exactly this value.
    #[arg(long, value_name = "V")]
    pub expect_value: Option<String>,
    /// Condition: the key does not exist.
    #[arg(long)]
    pub expect_absent: bool,
    /// Action: write this value.
    #[arg(long, value_name = "V")]
    pub value: Option<String>,
    /// Action: delete the key.
    #[arg(long)]
    pub delete: bool,
}

impl CasArgs {
    /// The condition asked for.
    pub fn condition(&self) -> Condition {
        match (&self.expect_revision, &self.expect_value) {
            (Some(r), _) => Condition::RevisionEquals(*r),
            (None, Some(v)) => Condition::ValueEquals(Bytes::from(v.clone())),
            (None, None) => Condition::Absent,
        }
    }

    /// The action asked for.
    pub fn action(&self) -> CasAction {
        match &self.value {
            Some(v) => CasAction::Set(Bytes::from(v.clone())),
            None => CasAction::Delete,
        }
    }
}

/// A `ns` subcommand.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum NsCommand {
    /// Create a namespace.
    Create {
        /// The name: [a-z0-9_-]{1,64}.
        name: String,
        /// The replication protocol.
        #[arg(long, value_enum)]
        protocol: Option<ProtocolArg>,
        /// The replica count N (default: the cluster size).
        #[arg(long)]
        replicas: Option<u32>,
        /// Quorum namespaces: the default write quorum W.
        #[arg(long)]
        w: Option<u32>,
        /// Quorum namespaces: the default read quorum R.
        #[arg(long)]
        r: Option<u32>,
        /// Quorum namespaces: the conflict policy.
        #[arg(long, value_enum)]
        conflicts: Option<ConflictsArg>,
    },
    /// List namespaces (text: one name per line).
    List,
    /// Describe a namespace.
    Describe {
        /// The name.
        name: String,
    },
    /// Drop a namespace and all its keys.
    Drop {
        /// The name.
        name: String,
    },
}

/// A protocol as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Primary-backup (Raft).
    PrimaryBackup,
    /// Leaderless quorums.
    Quorum,
}

/// A conflict policy as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConflictsArg {
    /// Last writer wins.
    Lww,
    /// Keep concurrent values as siblings.
    Siblings,
}

/// A `host:port` address, as the server requires of a replica's address.
fn parse_host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not a host:port address")),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s} is not in (0, 86400] seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Cli {
    /// Parses and checks arguments, as clap's `try_parse_from` does plus the checks clap
    /// cannot express.
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        cli.check()?;
        Ok(cli)
    }

    /// The checks across options that clap cannot express.
    pub fn check(&self) -> Result<(), clap::Error> {
        let usage = |msg: &str| Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg);
        if self.consistency == Some(LevelArg::BoundedStaleness) && self.max_staleness_ms.is_none() {
            return Err(usage(
                "--consistency bounded-staleness needs --max-staleness-ms",
            ));
        }
        if self.max_staleness_ms.is_some()
            && self
                .consistency
                .is_some_and(|c| c != LevelArg::BoundedStaleness)
        {
            return Err(usage(
                "--max-staleness-ms applies to --consistency bounded-staleness only",
            ));
        }
        if self.endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err(usage("--endpoints names no endpoint"));
        }
        if let Some(token) = &self.session_token {
            if let Err(e) = token.parse::<crate::SessionToken>() {
                return Err(usage(&format!("--session-token: {e}")));
            }
        }
        if let Command::Txn(_) = self.command {
            if self.session_token.is_some() {
                return Err(usage(
                    "txn does not run in a session (--session-token): transactions are strict serializable",
                ));
            }
            if self.consistency.is_some() || self.max_staleness_ms.is_some() {
                return Err(usage(
                    "txn takes no --consistency: transactions are strict serializable",
                ));
            }
        }
        if let Command::Scan(ScanArgs { limit: Some(0), .. }) = self.command {
            return Err(usage("--limit must be at least 1"));
        }
        Ok(())
    }

    /// The consistency asked for; `--max-staleness-ms` alone implies bounded-staleness.
    pub fn consistency(&self) -> Option<Consistency> {
        match (self.consistency, self.max_staleness_ms) {
            (None, None) => None,
            (level, ms) => Some(Consistency {
                level: level.map_or(Level::BoundedStaleness, Level::from),
                max_staleness: ms.map(Duration::from_millis),
                ..Consistency::default()
            }),
        }
    }

    /// The per-call timeout: `--timeout`, else [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The per-call options of data commands.
    pub fn call_options(&self) -> CallOptions {
        CallOptions {
            namespace: Some(self.namespace.clone()),
            consistency: self.consistency(),
            timeout: Some(self.timeout()),
            deadline: None,
            context: None,
        }
    }

    /// The options of `cluster add`: `--timeout` if given, else the client library's
    /// [`crate::client::ADD_NODE_TIMEOUT`].
    pub fn add_node_options(&self) -> CallOptions {
        CallOptions {
            timeout: self.timeout,
            ..CallOptions::default()
        }
    }

    /// The client these arguments describe.
    pub fn client(&self) -> Result<Client, Error> {
        Client::builder()
            .endpoints(
                self.endpoints
                    .iter()
                    .filter(|e| !e.trim().is_empty())
                    .cloned(),
            )
            .namespace(self.namespace.clone())
            .timeout(self.timeout())
            .connect_timeout(self.timeout().min(Duration::from_secs(2)))
            .build()
    }
}

/// Runs `dialctl` with the process's arguments and returns its exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse_checked(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            // Prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dialctl: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let stdout = std::io::stdout();
    let mut printer = Printer::new(cli.output, stdout.lock());
    let code = match runtime.block_on(run(&cli, &mut printer)) {
        Ok(code) => code,
        Err(RunError::Usage(e)) => {
            eprintln!("dialctl: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("dialctl: {e}");
            EXIT_ERROR
        }
    };
    if let Err(e) = printer.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("dialctl: cannot write the output: {e}");
            return EXIT_ERROR;
        }
    }
    code
}

/// What a command failed with: a client error, or reading stdin / writing stdout.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The client call failed.
    #[error(transparent)]
    Client(#[from] Error),
    /// Reading stdin or writing stdout failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The input is wrong (a `txn` script that does not parse, or cannot be read): exit
    /// [`EXIT_USAGE`].
    #[error("{0}")]
    Usage(String),
}

/// `opts` with the causal context of `--context` (URL-safe base64, as `get` prints it).
fn with_context(opts: CallOptions, context: Option<&str>) -> Result<CallOptions, RunError> {
    use base64::Engine as _;
    match context {
        None => Ok(opts),
        Some(text) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map(|bytes| opts.context(bytes))
            .map_err(|_| {
                RunError::Usage(
                    "--context: not a causal context (URL-safe base64, as `dialctl get` prints it)"
                        .into(),
                )
            }),
    }
}

/// Runs one parsed command, printing its result; returns the exit code.
pub async fn run<W: Write>(cli: &Cli, out: &mut Printer<W>) -> Result<i32, RunError> {
    // A script is read and checked before anything is sent.
    let script = match &cli.command {
        Command::Txn(args) if !args.is_one_shot() => Some(read_script(args.file.as_deref())?),
        _ => None,
    };
    let client = cli.client()?;
    let session = match &cli.session_token {
        Some(text) => Some(Session::resume_with(
            &client,
            text,
            SessionGuarantees::all(),
        )?),
        None => None,
    };
    let opts = cli.call_options();
    let s = session.as_ref();
    match &cli.command {
        Command::Get { key } => {
            let got = match s {
                Some(s) => s.get_with(key, &opts).await?,
                None => client.get_with(key, &opts).await?,
            };
            let found = got.entry.is_some();
            out.get(key.as_bytes(), &got, s)?;
            Ok(if found { EXIT_OK } else { EXIT_CONDITION })
        }
        Command::Put {
            key,
            value,
            context,
        } => {
            let opts = with_context(opts.clone(), context.as_deref())?;
            let value = match value {
                Some(v) => Bytes::from(v.clone()),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf)?;
                    Bytes::from(buf)
                }
            };
            let put = match s {
                Some(s) => s.put_with(key, value, &opts).await?,
                None => client.put_with(key, value, &opts).await?,
            };
            out.put(key.as_bytes(), &put, s)?;
            Ok(EXIT_OK)
        }
        Command::Del { key, context } => {
            let opts = with_context(opts.clone(), context.as_deref())?;
            let del = match s {
                Some(s) => s.delete_with(key, &opts).await?,
                None => client.delete_with(key, &opts).await?,
            };
            out.delete(key.as_bytes(), &del, s)?;
            Ok(EXIT_OK)
        }
        Command::Scan(args) => {
            let range = ScanRange {
                start: Bytes::from(args.start.clone().unwrap_or_default()),
                end: Bytes::from(args.end.clone().unwrap_or_default()),
                limit: args.limit.unwrap_or(0),
            };
            // With --all, follow continuations here (rather than `scan_all`) to keep the
            // last page's header for the output.
            let mut items = Vec::new();
            let mut continuation = None;
            loop {
                let page = match s {
                    Some(s) => s.scan(&range, continuation, &opts).await?,
                    None => client.scan(&range, continuation, &opts).await?,
                };
                items.extend(page.items);
                continuation = page.continuation;
                if !args.all || continuation.is_none() {
                    out.scan(&items, continuation.is_some(), Some(&page.meta), s)?;
                    break;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Cas(args) => {
            let (condition, action) = (args.condition(), args.action());
            let cas = match s {
                Some(s) => {
                    s.compare_and_set_with(&args.key, condition, action, &opts)
                        .await?
                }
                None => {
                    client
                        .compare_and_set_with(&args.key, condition, action, &opts)
                        .await?
                }
            };
            out.cas(args.key.as_bytes(), &cas, s)?;
            Ok(if cas.succeeded {
                EXIT_OK
            } else {
                EXIT_CONDITION
            })
        }
        Command::Ns(ns) => {
            match ns {
                NsCommand::Create {
                    name,
                    protocol,
                    replicas,
                    w,
                    r,
                    conflicts,
                } => {
                    let spec = NamespaceSpec {
                        name: name.clone(),
                        protocol: protocol.map(|p| match p {
                            ProtocolArg::PrimaryBackup => Protocol::PrimaryBackup,
                            ProtocolArg::Quorum => Protocol::Quorum,
                        }),
                        replicas: *replicas,
                        write_quorum: *w,
                        read_quorum: *r,
                        conflicts: conflicts.map(|c| match c {
                            ConflictsArg::Lww => ConflictPolicy::Lww,
                            ConflictsArg::Siblings => ConflictPolicy::Siblings,
                        }),
                    };
                    let info = client.create_namespace(&spec).await?;
                    out.namespace(&info)?;
                }
                NsCommand::List => {
                    let list = client.list_namespaces().await?;
                    out.namespaces(&list)?;
                }
                NsCommand::Describe { name } => {
                    let info = client.describe_namespace(name).await?;
                    out.namespace(&info)?;
                }
                NsCommand::Drop { name } => {
                    client.drop_namespace(name).await?;
                    out.dropped(name)?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Txn(args) => match script {
            Some(script) => run_script(cli, &client, args, script, out).await,
            None => {
                let mut opts = opts;
                opts.consistency = None;
                let txn = client
                    .txn()
                    .when(args.when.iter().cloned())
                    .then(args.then.iter().cloned())
                    .otherwise(args.otherwise.iter().cloned())
                    .options(opts)
                    .commit()
                    .await?;
                out.one_shot(&txn)?;
                Ok(if txn.succeeded {
                    EXIT_OK
                } else {
                    EXIT_CONDITION
                })
            }
        },
        Command::Cluster(cmd) => {
            match cmd {
                ClusterCommand::Status => {
                    let status = client.cluster_status_with(&opts).await?;
                    out.cluster_status(&status)?;
                }
                ClusterCommand::Add { id, address } => {
                    let membership = client
                        .add_node_with(*id, address, &cli.add_node_options())
                        .await?;
                    out.membership(&membership)?;
                }
                ClusterCommand::Remove { id } => {
                    let membership = client.remove_node_with(*id, &opts).await?;
                    out.membership(&membership)?;
                }
            }
            Ok(EXIT_OK)
        }
    }
}

/// Reads and parses a `txn` script from `file` (stdin when `None` or `-`).
fn read_script(file: Option<&std::path::Path>) -> Result<Vec<ScriptLine>, RunError> {
    let (name, bytes) = match file {
        Some(path) if path.as_os_str() != "-" => (
            path.display().to_string(),
            std::fs::read(path).map_err(|e| {
                RunError::Usage(format!("cannot read script {}: {e}", path.display()))
            })?,
        ),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| RunError::Usage(format!("cannot read the script from stdin: {e}")))?;
            ("stdin".to_string(), buf)
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        RunError::Usage(format!(
            "{name}: the script is not UTF-8 text (write bytes as \\xHH in quotes)"
        ))
    })?;
    script::parse_script(&text).map_err(|e| RunError::Usage(e.to_string()))
}

/// Runs a script's operations in `txn`, returning what its reads saw.
pub async fn run_script_ops(
    txn: &Transaction,
    script: &[ScriptLine],
) -> Result<Vec<ReadResult>, Error> {
    let mut reads = Vec::new();
    for ScriptLine { line, op } in script {
        match op {
            ScriptOp::Get(key) => {
                let entry = txn.get_entry(key).await?;
                reads.push(ReadResult::Get {
                    line: *line,
                    key: key.clone(),
                    entry,
                });
            }
            ScriptOp::Put(key, value) => txn.put(key, value.clone()),
            ScriptOp::Del(key) => txn.delete(key),
            ScriptOp::Scan(start, end) => {
                let items = txn
                    .scan(&ScanRange::new(start.clone(), end.clone()))
                    .await?;
                reads.push(ReadResult::Scan {
                    line: *line,
                    start: start.clone(),
                    end: end.clone(),
                    items,
                });
            }
        }
    }
    Ok(reads)
}

/// Runs a script as one interactive transaction and prints its outcome.
async fn run_script<W: Write>(
    cli: &Cli,
    client: &Client,
    args: &TxnArgs,
    script: Vec<ScriptLine>,
    out: &mut Printer<W>,
) -> Result<i32, RunError> {
    let script = std::sync::Arc::new(script);
    let opts = TransactionOptions {
        call: CallOptions {
            consistency: None,
            ..cli.call_options()
        },
        max_retries: args.retries,
        ..TransactionOptions::default()
    };
    let result = client
        .transaction_with(&opts, |txn| {
            let script = script.clone();
            async move { run_script_ops(&txn, &script).await }
        })
        .await;
    match result {
        Ok(done) => {
            out.txn(
                &done.value,
                &TxnOutcome::Committed {
                    revision: done.revision,
                    snapshot_revision: done.snapshot_revision,
                    attempts: done.attempts,
                },
            )?;
            Ok(EXIT_OK)
        }
        Err(Error::TransactionAborted { status, attempts }) => {
            out.txn(
                &[],
                &TxnOutcome::Aborted {
                    reason: status.reason().unwrap_or("ABORTED").to_string(),
                    message: status.message().to_string(),
                    attempts,
                },
            )?;
            Ok(EXIT_CONDITION)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_checked(std::iter::once("dialctl").chain(args.iter().copied()))
    }

    #[test]
    fn globals_have_defaults_and_may_follow_the_command() {
        let cli = parse(&["get", "k"]).expect("valid");
        assert_eq!(cli.namespace, "default");
        assert_eq!(cli.timeout, None);
        assert_eq!(cli.timeout(), Duration::from_secs(5));
        assert_eq!(cli.output, Format::Text);
        assert_eq!(cli.consistency(), None);
        assert_eq!(cli.command, Command::Get { key: "k".into() });
        if std::env::var_os("DIALKV_ENDPOINTS").is_none() {
            assert_eq!(cli.endpoints, vec![DEFAULT_ENDPOINT.to_string()]);
        }

        let cli = parse(&[
            "--endpoints",
            "a:1,http://b:2",
            "get",
            "k",
            "--output",
            "json",
            "-n",
            "ns1",
            "--timeout",
            "0.5",
        ])
        .expect("valid");
        assert_eq!(
            cli.endpoints,
            vec!["a:1".to_string(), "http://b:2".to_string()]
        );
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.namespace, "ns1");
        assert_eq!(cli.timeout(), Duration::from_millis(500));
    }

    #[test]
    fn consistency_and_staleness() {
        let cli = parse(&[
            "--consistency",
            "bounded-staleness",
            "--max-staleness-ms",
            "250",
            "get",
            "k",
        ])
        .expect("valid");
        assert_eq!(
            cli.consistency(),
            Some(Consistency::bounded_staleness(Duration::from_millis(250)))
        );
        let cli = parse(&["--consistency", "eventual", "get", "k"]).expect("valid");
        assert_eq!(cli.consistency(), Some(Consistency::eventual()));
        let cli = parse(&["--max-staleness-ms", "9", "get", "k"]).expect("valid");
        assert_eq!(
            cli.consistency().map(|c| c.level),
            Some(Level::BoundedStaleness)
        );
        for bad in [
            &["--consistency", "bounded-staleness", "get", "k"][..],
            &[
                "--consistency",
                "causal",
                "--max-staleness-ms",
                "1",
                "get",
                "k",
            ][..],
            &["--consistency", "strong", "get", "k"][..],
            &["--timeout", "0", "get", "k"][..],
            &["--timeout", "soon", "get", "k"][..],
        ] {
            let err = parse(bad).expect_err("usage error");
            assert_eq!(err.exit_code(), EXIT_USAGE, "{bad:?}");
        }
    }

    #[test]
    fn put_value_is_optional() {
        let cli = parse(&["put", "k", "v"]).expect("valid");
        assert_eq!(
            cli.command,
            Command::Put {
                key: "k".into(),
                value: Some("v".into()),
                context: None,
            }
        );
        let cli = parse(&["put", "k"]).expect("valid");
        assert_eq!(
            cli.command,
            Command::Put {
                key: "k".into(),
                value: None,
                context: None,
            }
        );
        let cli = parse(&["put", "k", "v", "--context", "AQ"]).expect("valid");
        assert_eq!(
            cli.command,
            Command::Put {
                key: "k".into(),
                value: Some("v".into()),
                context: Some("AQ".into()),
            }
        );
        assert_eq!(
            parse(&["put"]).expect_err("key needed").exit_code(),
            EXIT_USAGE
        );
    }

    #[test]
    fn scan_arguments() {
        let cli = parse(&[
            "scan", "--start", "a", "--end", "m", "--limit", "10", "--all",
        ])
        .expect("valid");
        assert_eq!(
            cli.command,
            Command::Scan(ScanArgs {
                start: Some("a".into()),
                end: Some("m".into()),
                limit: Some(10),
                all: true
            })
        );
        assert!(parse(&["scan", "--limit", "0"]).is_err());
    }

    #[test]
    fn cas_needs_one_condition_and_one_action() {
        let cli = parse(&["cas", "k", "--expect-revision", "7", "--value", "v"]).expect("valid");
        let Command::Cas(args) = &cli.command else {
            panic!("cas")
        };
        assert_eq!(args.condition(), Condition::RevisionEquals(7));
        assert_eq!(args.action(), CasAction::Set(Bytes::from_static(b"v")));
        let cli = parse(&["cas", "k", "--expect-absent", "--value", "v"]).expect("valid");
        let Command::Cas(args) = &cli.command else {
            panic!("cas")
        };
        assert_eq!(args.condition(), Condition::Absent);
        let cli = parse(&["cas", "k", "--expect-value", "old", "--delete"]).expect("valid");
        let Command::Cas(args) = &cli.command else {
            panic!("cas")
        };
        assert_eq!(
            args.condition(),
            Condition::ValueEquals(Bytes::from_static(b"old"))
        );
        assert_eq!(args.action(), CasAction::Delete);
        for bad in [
            &["cas", "k", "--value", "v"][..],
            &["cas", "k", "--expect-absent"][..],
            &[
                "cas",
                "k",
                "--expect-absent",
                "--expect-revision",
                "1",
                "--value",
                "v",
            ][..],
            &["cas", "k", "--expect-absent", "--value", "v", "--delete"][..],
        ] {
            assert_eq!(
                parse(bad).expect_err("usage").exit_code(),
                EXIT_USAGE,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn namespace_commands() {
        let cli = parse(&[
            "ns",
            "create",
            "orders",
            "--protocol",
            "quorum",
            "--replicas",
            "3",
            "--w",
            "2",
            "--r",
            "2",
            "--conflicts",
            "siblings",
        ])
        .expect("valid");
        assert_eq!(
            cli.command,
            Command::Ns(NsCommand::Create {
                name: "orders".into(),
                protocol: Some(ProtocolArg::Quorum),
                replicas: Some(3),
                w: Some(2),
                r: Some(2),
                conflicts: Some(ConflictsArg::Siblings),
            })
        );
        assert_eq!(
            parse(&["ns", "list"]).expect("valid").command,
            Command::Ns(NsCommand::List)
        );
        assert_eq!(
            parse(&["ns", "describe", "x"]).expect("valid").command,
            Command::Ns(NsCommand::Describe { name: "x".into() })
        );
        assert_eq!(
            parse(&["ns", "drop", "x"]).expect("valid").command,
            Command::Ns(NsCommand::Drop { name: "x".into() })
        );
        assert!(parse(&["ns", "create", "x", "--protocol", "paxos"]).is_err());
    }

    #[test]
    fn cluster_commands() {
        let cli = parse(&["cluster", "status", "--output", "json"]).expect("valid");
        assert_eq!(cli.command, Command::Cluster(ClusterCommand::Status));
        assert_eq!(cli.output, Format::Json);
        let cli = parse(&["cluster", "add", "4", "10.0.0.4:7401"]).expect("valid");
        assert_eq!(
            cli.command,
            Command::Cluster(ClusterCommand::Add {
                id: 4,
                address: "10.0.0.4:7401".into()
            })
        );
        // `cluster add` waits as long as a replica may take to catch up, unless told.
        assert_eq!(cli.add_node_options().timeout, None);
        let cli = parse(&["--timeout", "30", "cluster", "add", "4", "db4:7401"]).expect("valid");
        assert_eq!(
            cli.add_node_options().timeout,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse(&["cluster", "remove", "2"]).expect("valid").command,
            Command::Cluster(ClusterCommand::Remove { id: 2 })
        );
        assert_eq!(
            parse(&["cluster", "rm", "2"]).expect("valid").command,
            Command::Cluster(ClusterCommand::Remove { id: 2 })
        );
        for bad in [
            &["cluster"][..],
            &["cluster", "add", "4"][..],
            &["cluster", "add", "0", "db4:7401"][..],
            &["cluster", "add", "-1", "db4:7401"][..],
            &["cluster", "add", "four", "db4:7401"][..],
            &["cluster", "add", "4", "db4"][..],
            &["cluster", "add", "4", ":7401"][..],
            &["cluster", "add", "4", "db4:99999"][..],
            &["cluster", "remove"][..],
            &["cluster", "remove", "0"][..],
            &["cluster", "remove", "x"][..],
            &["cluster", "status", "extra"][..],
            &["cluster", "join", "4"][..],
        ] {
            assert_eq!(
                parse(bad).expect_err("usage").exit_code(),
                EXIT_USAGE,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn cluster_commands_exit_3_when_no_server_answers() {
        // Nothing listens on port 1: the call fails to connect, a server-side error.
        for args in [
            &["cluster", "status"][..],
            &["cluster", "add", "4", "127.0.0.1:2"][..],
            &["cluster", "remove", "4"][..],
        ] {
            let mut argv = vec!["--endpoints", "127.0.0.1:1", "--timeout", "1"];
            argv.extend_from_slice(args);
            let cli = parse(&argv).expect("valid");
            let mut out = Printer::new(Format::Text, Vec::new());
            let err = run(&cli, &mut out).await.expect_err("nothing listens");
            assert!(
                matches!(err, RunError::Client(Error::Unavailable(_))),
                "{err:?}"
            );
            assert!(out.into_inner().is_empty());
        }
    }

    #[test]
    fn session_token_is_global() {
        let mut token = crate::SessionToken::new();
        token.observe_write("default", 1, 3);
        let text = token.to_string();
        let cli = parse(&["get", "k", "--session-token", &text]).expect("valid");
        assert_eq!(cli.session_token.as_deref(), Some(text.as_str()));
        let err = parse(&["get", "k", "--session-token", "not a token!"]).expect_err("usage");
        assert_eq!(err.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn txn_is_a_script_or_a_one_shot() {
        let cli = parse(&["txn"]).expect("valid");
        let Command::Txn(args) = &cli.command else {
            panic!("txn")
        };
        assert!(!args.is_one_shot());
        assert_eq!((args.file.as_ref(), args.retries), (None, 10));
        let cli = parse(&["txn", "-f", "s.txt", "--retries", "3"]).expect("valid");
        let Command::Txn(args) = &cli.command else {
            panic!("txn")
        };
        assert_eq!(args.file.as_deref(), Some(std::path::Path::new("s.txt")));
        assert_eq!(args.retries, 3);
        let cli = parse(&[
            "txn",
            "--if",
            "value leader = n1",
            "--if",
            "exists lease",
            "--then",
            "put leader n2",
            "--then",
            "del lease",
            "--else",
            "get leader",
        ])
        .expect("valid");
        let Command::Txn(args) = &cli.command else {
            panic!("txn")
        };
        assert!(args.is_one_shot());
        assert_eq!(
            args.when,
            [Compare::value("leader", "n1"), Compare::exists("lease")]
        );
        assert_eq!(
            args.then,
            [TxnOp::put("leader", "n2"), TxnOp::delete("lease")]
        );
        assert_eq!(args.otherwise, [TxnOp::get("leader")]);
        // --then alone is an unconditional atomic batch.
        let cli = parse(&["txn", "--then", "put k v"]).expect("valid");
        assert!(matches!(&cli.command, Command::Txn(a) if a.is_one_shot()));
        for bad in [
            &["txn", "--if", "older k 1"][..],
            &["txn", "--then", "scan a z"][..],
            &["txn", "--file", "s.txt", "--if", "exists k"][..],
            &["txn", "--retries", "2", "--then", "put k v"][..],
            &["txn", "--session-token", "AQdkZWZhdWx0AQcH"][..],
            &["txn", "--consistency", "eventual"][..],
        ] {
            assert_eq!(
                parse(bad).expect_err("usage").exit_code(),
                EXIT_USAGE,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_bad_script_is_a_usage_error_before_anything_is_sent() {
        let dir = std::env::temp_dir().join(format!("dialctl-txn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.txt");
        std::fs::write(&path, "get a\nput b\n").expect("written");
        let file = path.to_string_lossy().to_string();
        // Nothing listens on port 1: a script error must be found first.
        let cli = parse(&["--endpoints", "127.0.0.1:1", "txn", "--file", &file]).expect("valid");
        let mut out = Printer::new(Format::Text, Vec::new());
        let err = run(&cli, &mut out).await.expect_err("bad script");
        match err {
            RunError::Usage(msg) => assert!(
                msg.starts_with("script line 2: put takes KEY and VALUE"),
                "{msg}"
            ),
            other => panic!("{other:?}"),
        }
        let missing = dir.join("missing.txt").to_string_lossy().to_string();
        let cli = parse(&["--endpoints", "127.0.0.1:1", "txn", "-f", &missing]).expect("valid");
        assert!(matches!(run(&cli, &mut out).await, Err(RunError::Usage(_))));
        // A good script against no server is a server error (exit 3).
        std::fs::write(&path, "get a\n").expect("written");
        let cli = parse(&[
            "--endpoints",
            "127.0.0.1:1",
            "--timeout",
            "1",
            "txn",
            "-f",
            &file,
        ])
        .expect("valid");
        assert!(matches!(
            run(&cli, &mut out).await,
            Err(RunError::Client(Error::Unavailable(_)))
        ));
        assert!(out.into_inner().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
