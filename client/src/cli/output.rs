//! dialctl's output: text for people and shell pipelines, JSON (one object per line) for
//! programs. Both are stable: tests and scripts depend on them.
//!
//! In JSON, keys and values are strings when they are valid UTF-8; otherwise the field is
//! replaced by `key_base64` / `value_base64` holding standard (padded) base64. Session tokens
//! are in their text form (URL-safe base64), ready for `--session-token`.

use std::io::{self, Write};

use base64::Engine as _;
use clap::ValueEnum;
use serde_json::{json, Map, Value};

use super::script::ReadResult;
use crate::{
    CasOutput, ClusterStatus, DeleteOutput, Entry, GetOutput, Membership, NamespaceInfo,
    NodeStatus, PutOutput, ResponseMeta, Session, TxnOpKind, TxnOutput,
};

/// How an interactive `txn` ended, for printing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Committed.
    Committed {
        /// The revision of its writes; `None` when it wrote nothing.
        revision: Option<u64>,
        /// The snapshot its reads saw.
        snapshot_revision: u64,
        /// How many times it ran.
        attempts: u32,
    },
    /// Aborted on every attempt.
    Aborted {
        /// The last abort's reason (e.g. `TRANSACTION_CONFLICT`).
        reason: String,
        /// The last abort's message (naming the key of a conflict).
        message: String,
        /// How many times it ran.
        attempts: u32,
    },
}

/// The output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text: raw values, one item per line.
    #[default]
    Text,
    /// One JSON object per command, on one line.
    Json,
}

/// Writes command results in one format.
#[derive(Debug)]
pub struct Printer<W: Write> {
    format: Format,
    out: W,
}

/// The text form of a causal context, as `--context` takes it: URL-safe base64.
pub fn context_text(context: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(context)
}

/// Adds `name` (or `name_base64`) with `bytes` to a JSON object.
fn put_bytes(obj: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(name.to_string(), Value::from(s)),
        Err(_) => obj.insert(
            format!("{name}_base64"),
            Value::from(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    };
}

/// The served level and session token of a reply: the session's merged token when the
/// command ran in a session, else the token the reply carried.
fn put_meta(obj: &mut Map<String, Value>, meta: Option<&ResponseMeta>, session: Option<&Session>) {
    obj.insert(
        "served_level".into(),
        meta.map_or(Value::Null, |m| Value::from(m.served_level.name())),
    );
    let token = match (session, meta) {
        (Some(s), _) => Value::from(s.token_string()),
        (None, Some(m)) => Value::from(m.session_token.to_string()),
        (None, None) => Value::Null,
    };
    obj.insert("session_token".into(), token);
}

fn entry_json(e: &Entry) -> Value {
    let mut obj = Map::new();
    put_bytes(&mut obj, "key", &e.key);
    put_bytes(&mut obj, "value", &e.value);
    obj.insert("revision".into(), Value::from(e.version.revision));
    Value::Object(obj)
}

fn namespace_json(info: &NamespaceInfo) -> Value {
    let s = &info.spec;
    json!({
        "name": s.name,
        "protocol": s.protocol.unwrap_or_default().name(),
        "replicas": s.replicas.unwrap_or(0),
        "write_quorum": s.write_quorum.unwrap_or(0),
        "read_quorum": s.read_quorum.unwrap_or(0),
        "conflicts": s.conflicts.map(|c| c.name()),
        "replica_ids": info.replica_ids,
        "revision": info.revision,
    })
}

/// The columns of `cluster status`'s text table.
pub const CLUSTER_COLUMNS: [&str; 9] = [
    "ID",
    "ADDRESS",
    "ROLE",
    "VOTER",
    "TERM",
    "APPLIED",
    "LAG_VERSIONS",
    "LAG_MS",
    "REACHABLE",
];

/// One row of `cluster status`'s table: what an unreachable replica did not report, and an
/// unknown lag, are `-`.
fn node_row(n: &NodeStatus) -> [String; 9] {
    let known = |v: u64| {
        if n.reachable {
            v.to_string()
        } else {
            "-".to_string()
        }
    };
    [
        n.id.to_string(),
        if n.address.is_empty() {
            "-".to_string()
        } else {
            n.address.clone()
        },
        n.role.name().to_string(),
        n.voter.to_string(),
        known(n.term),
        known(n.applied_index),
        known(n.lag_versions),
        match n.lag_ms {
            Some(ms) if n.reachable => ms.to_string(),
            _ => "-".to_string(),
        },
        n.reachable.to_string(),
    ]
}

/// `cluster status`'s JSON for one replica: what an unreachable replica did not report, and
/// an unknown lag or primary, are `null`.
fn node_json(n: &NodeStatus) -> Value {
    let known = |v: u64| {
        if n.reachable {
            Value::from(v)
        } else {
            Value::Null
        }
    };
    json!({
        "id": n.id,
        "address": n.address,
        "role": n.role.name(),
        "voter": n.voter,
        "reachable": n.reachable,
        "term": known(n.term),
        "last_log_index": known(n.last_log_index),
        "commit_index": known(n.commit_index),
        "applied_index": known(n.applied_index),
        "lag_versions": known(n.lag_versions),
        "lag_ms": n.lag_ms.filter(|_| n.reachable),
        "leader_id": n.leader_id.filter(|_| n.reachable),
    })
}

/// Writes rows as left-aligned columns two spaces apart, with no trailing spaces.
fn write_table<W: Write, const N: usize>(
    out: &mut W,
    header: [&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_string);
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Text lines for bytes: UTF-8 as is, other bytes replaced (use JSON for exact bytes).
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

impl<W: Write> Printer<W> {
    /// A printer of `format` into `out`.
    pub fn new(format: Format, out: W) -> Self {
        Printer { format, out }
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer, for tests.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn json(&mut self, obj: Map<String, Value>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &Value::Object(obj))?;
        self.out.write_all(b"\n")
    }

    /// `get`: text prints the value bytes exactly (nothing when absent); JSON prints
    /// `{key, found, value|value_base64, revision, served_level, session_token}`.
    pub fn get(
        &mut self,
        key: &[u8],
        got: &GetOutput,
        session: Option<&Session>,
    ) -> io::Result<()> {
        match self.format {
            Format::Text => {
                if got.siblings.len() > 1 {
                    // Concurrent versions: the newest live one goes to stdout as usual; the
                    // others, and how to resolve them, to stderr.
                    eprintln!(
                        "dialctl: {} concurrent versions (siblings) of {:?}:",
                        got.siblings.len(),
                        lossy(key)
                    );
                    for (i, s) in got.siblings.iter().enumerate() {
                        match s.deleted {
                            true => eprintln!("  [{i}] (deleted) revision {}", s.revision),
                            false => {
                                eprintln!("  [{i}] {:?} revision {}", lossy(&s.value), s.revision)
                            }
                        }
                    }
                    eprintln!(
                        "dialctl: resolve with: dialctl put {:?} VALUE --context {}",
                        lossy(key),
                        context_text(&got.context)
                    );
                }
                match &got.entry {
                    Some(e) => self.out.write_all(&e.value),
                    None => {
                        eprintln!("dialctl: key {:?} not found", lossy(key));
                        Ok(())
                    }
                }
            }
            Format::Json => {
                let mut obj = Map::new();
                put_bytes(&mut obj, "key", key);
                obj.insert("found".into(), Value::from(got.entry.is_some()));
                match &got.entry {
                    Some(e) => {
                        put_bytes(&mut obj, "value", &e.value);
                        obj.insert("revision".into(), Value::from(e.version.revision));
                    }
                    None => {
                        obj.insert("value".into(), Value::Null);
                        obj.insert("revision".into(), Value::Null);
                    }
                }
                if !got.siblings.is_empty() {
                    let siblings = got
                        .siblings
                        .iter()
                        .map(|s| {
                            let mut o = Map::new();
                            put_bytes(&mut o, "value", &s.value);
                            o.insert("deleted".into(), Value::from(s.deleted));
                            o.insert("revision".into(), Value::from(s.revision));
                            Value::Object(o)
                        })
                        .collect();
                    obj.insert("siblings".into(), Value::Array(siblings));
                }
                if !got.context.is_empty() {
                    obj.insert("context".into(), Value::from(context_text(&got.context)));
                }
                put_meta(&mut obj, Some(&got.meta), session);
                self.json(obj)
            }
        }
    }

    /// `put`: text prints `OK`; JSON `{key, revision, served_level, session_token}`.
    pub fn put(
        &mut self,
        key: &[u8],
        put: &PutOutput,
        session: Option<&Session>,
    ) -> io::Result<()> {
        match self.format {
            Format::Text => self.out.write_all(b"OK\n"),
            Format::Json => {
                let mut obj = Map::new();
                put_bytes(&mut obj, "key", key);
                obj.insert("revision".into(), Value::from(put.version.revision));
                put_meta(&mut obj, Some(&put.meta), session);
                self.json(obj)
            }
        }
    }

    /// `del`: text prints `1` if the key existed, else `0`; JSON
    /// `{key, existed, revision, served_level, session_token}`.
    pub fn delete(
        &mut self,
        key: &[u8],
        del: &DeleteOutput,
        session: Option<&Session>,
    ) -> io::Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "{}", u8::from(del.existed)),
            Format::Json => {
                let mut obj = Map::new();
                put_bytes(&mut obj, "key", key);
                obj.insert("existed".into(), Value::from(del.existed));
                obj.insert(
                    "revision".into(),
                    del.version
                        .as_ref()
                        .map_or(Value::Null, |v| Value::from(v.revision)),
                );
                put_meta(&mut obj, Some(&del.meta), session);
                self.json(obj)
            }
        }
    }

    /// `scan`: text prints `key<TAB>value` per line; JSON
    /// `{items: [{key, value, revision}], more, served_level, session_token}`.
    pub fn scan(
        &mut self,
        items: &[Entry],
        more: bool,
        meta: Option<&ResponseMeta>,
        session: Option<&Session>,
    ) -> io::Result<()> {
        match self.format {
            Format::Text => {
                for e in items {
                    writeln!(self.out, "{}\t{}", lossy(&e.key), lossy(&e.value))?;
                }
                if more {
                    eprintln!(
                        "dialctl: more keys follow; use --all, or --start after the last key"
                    );
                }
                Ok(())
            }
            Format::Json => {
                let mut obj = Map::new();
                obj.insert(
                    "items".into(),
                    Value::Array(items.iter().map(entry_json).collect()),
                );
                obj.insert("more".into(), Value::from(more));
                put_meta(&mut obj, meta, session);
                self.json(obj)
            }
        }
    }

    /// `cas`: text prints `OK` or `FAILED`; JSON
    /// `{key, succeeded, revision, found, current, served_level, session_token}` where
    /// `revision` is the new version's and `current` the key's state when the condition failed.
    pub fn cas(
        &mut self,
        key: &[u8],
        cas: &CasOutput,
        session: Option<&Session>,
    ) -> io::Result<()> {
        match self.format {
            Format::Text => self
                .out
                .write_all(if cas.succeeded { b"OK\n" } else { b"FAILED\n" }),
            Format::Json => {
                let mut obj = Map::new();
                put_bytes(&mut obj, "key", key);
                obj.insert("succeeded".into(), Value::from(cas.succeeded));
                obj.insert(
                    "revision".into(),
                    cas.version
                        .as_ref()
                        .map_or(Value::Null, |v| Value::from(v.revision)),
                );
                obj.insert("found".into(), Value::from(cas.current.is_some()));
                obj.insert(
                    "current".into(),
                    cas.current.as_ref().map_or(Value::Null, entry_json),
                );
                put_meta(&mut obj, Some(&cas.meta), session);
                self.json(obj)
            }
        }
    }

    /// `ns create` / `ns describe`: text prints `field: value` lines; JSON one object.
    pub fn namespace(&mut self, info: &NamespaceInfo) -> io::Result<()> {
        match self.format {
            Format::Text => {
                let s = &info.spec;
                let ids: Vec<String> = info.replica_ids.iter().map(u64::to_string).collect();
                writeln!(self.out, "name: {}", s.name)?;
                writeln!(
                    self.out,
                    "protocol: {}",
                    s.protocol.unwrap_or_default().name()
                )?;
                writeln!(self.out, "replicas: {}", s.replicas.unwrap_or(0))?;
                if s.protocol == Some(crate::Protocol::Quorum) {
                    writeln!(self.out, "write_quorum: {}", s.write_quorum.unwrap_or(0))?;
                    writeln!(self.out, "read_quorum: {}", s.read_quorum.unwrap_or(0))?;
                    writeln!(
                        self.out,
                        "conflicts: {}",
                        s.conflicts.unwrap_or_default().name()
                    )?;
                }
                writeln!(self.out, "replica_ids: {}", ids.join(","))?;
                writeln!(self.out, "revision: {}", info.revision)
            }
            Format::Json => {
                serde_json::to_writer(&mut self.out, &namespace_json(info))?;
                self.out.write_all(b"\n")
            }
        }
    }

    /// `ns list`: text prints one name per line; JSON `{namespaces: [...]}`.
    pub fn namespaces(&mut self, list: &[NamespaceInfo]) -> io::Result<()> {
        match self.format {
            Format::Text => {
                for info in list {
                    writeln!(self.out, "{}", info.spec.name)?;
                }
                Ok(())
            }
            Format::Json => {
                let mut obj = Map::new();
                obj.insert(
                    "namespaces".into(),
                    Value::Array(list.iter().map(namespace_json).collect()),
                );
                self.json(obj)
            }
        }
    }

    /// `cluster status`: text prints a table (see [`CLUSTER_COLUMNS`]), one replica per row
    /// by id; JSON `{leader_id, nodes: [{id, address, role, voter, reachable, term,
    /// last_log_index, commit_index, applied_index, lag_versions, lag_ms, leader_id}]}` with
    /// `null` for what is unknown.
    pub fn cluster_status(&mut self, status: &ClusterStatus) -> io::Result<()> {
        match self.format {
            Format::Text => {
                let rows: Vec<[String; 9]> = status.nodes.iter().map(node_row).collect();
                write_table(&mut self.out, CLUSTER_COLUMNS, &rows)
            }
            Format::Json => {
                let mut obj = Map::new();
                obj.insert("leader_id".into(), json!(status.leader_id));
                obj.insert(
                    "nodes".into(),
                    Value::Array(status.nodes.iter().map(node_json).collect()),
                );
                self.json(obj)
            }
        }
    }

    /// `cluster add` / `cluster remove`: text prints `voters: 1,2,3` and `learners: ...`
    /// lines; JSON `{voters: [...], learners: [...]}`.
    pub fn membership(&mut self, m: &Membership) -> io::Result<()> {
        match self.format {
            Format::Text => {
                let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                writeln!(self.out, "voters: {}", ids(&m.voters))?;
                writeln!(self.out, "learners: {}", ids(&m.learners))
            }
            Format::Json => {
                let mut obj = Map::new();
                obj.insert("voters".into(), json!(m.voters));
                obj.insert("learners".into(), json!(m.learners));
                self.json(obj)
            }
        }
    }

    /// Interactive `txn`: text prints each read (`get KEY: VALUE` or `get KEY: (not
    /// found)`; `scan START END: N keys` then `KEY<TAB>VALUE` lines), then
    /// `COMMITTED revision N` (`COMMITTED read-only snapshot S` when nothing was written) or
    /// `ABORTED REASON after N attempts: MESSAGE`. JSON: `{outcome: "committed"|"aborted",
    /// revision, snapshot_revision, attempts, reason, message, results: [{line, op: "get",
    /// key, found, value, revision} | {line, op: "scan", start, end, items: [{key, value,
    /// revision}]}]}` (revision 0: the transaction's own write).
    pub fn txn(&mut self, reads: &[ReadResult], outcome: &TxnOutcome) -> io::Result<()> {
        match self.format {
            Format::Text => {
                for read in reads {
                    match read {
                        ReadResult::Get { key, entry, .. } => match entry {
                            Some(e) => {
                                writeln!(self.out, "get {}: {}", lossy(key), lossy(&e.value))?
                            }
                            None => writeln!(self.out, "get {}: (not found)", lossy(key))?,
                        },
                        ReadResult::Scan {
                            start, end, items, ..
                        } => {
                            let bound = |b: &[u8]| {
                                if b.is_empty() {
                                    "\"\"".to_string()
                                } else {
                                    lossy(b).into_owned()
                                }
                            };
                            writeln!(
                                self.out,
                                "scan {} {}: {} key{}",
                                bound(start),
                                bound(end),
                                items.len(),
                                if items.len() == 1 { "" } else { "s" }
                            )?;
                            for e in items {
                                writeln!(self.out, "{}\t{}", lossy(&e.key), lossy(&e.value))?;
                            }
                        }
                    }
                }
                match outcome {
                    TxnOutcome::Committed {
                        revision: Some(r), ..
                    } => writeln!(self.out, "COMMITTED revision {r}"),
                    TxnOutcome::Committed {
                        revision: None,
                        snapshot_revision,
                        ..
                    } => writeln!(self.out, "COMMITTED read-only snapshot {snapshot_revision}"),
                    TxnOutcome::Aborted {
                        reason,
                        message,
                        attempts,
                    } => writeln!(
                        self.out,
                        "ABORTED {reason} after {attempts} attempts: {message}"
                    ),
                }
            }
            Format::Json => {
                let mut obj = Map::new();
                match outcome {
                    TxnOutcome::Committed {
                        revision,
                        snapshot_revision,
                        attempts,
                    } => {
                        obj.insert("outcome".into(), Value::from("committed"));
                        obj.insert("revision".into(), json!(revision));
                        obj.insert("snapshot_revision".into(), json!(snapshot_revision));
                        obj.insert("attempts".into(), json!(attempts));
                    }
                    TxnOutcome::Aborted {
                        reason,
                        message,
                        attempts,
                    } => {
                        obj.insert("outcome".into(), Value::from("aborted"));
                        obj.insert("reason".into(), Value::from(reason.as_str()));
                        obj.insert("message".into(), Value::from(message.as_str()));
                        obj.insert("attempts".into(), json!(attempts));
                    }
                }
                let results = reads
                    .iter()
                    .map(|read| {
                        let mut r = Map::new();
                        match read {
                            ReadResult::Get { line, key, entry } => {
                                r.insert("line".into(), json!(line));
                                r.insert("op".into(), Value::from("get"));
                                put_bytes(&mut r, "key", key);
                                r.insert("found".into(), Value::from(entry.is_some()));
                                match entry {
                                    Some(e) => {
                                        put_bytes(&mut r, "value", &e.value);
                                        r.insert("revision".into(), json!(e.version.revision));
                                    }
                                    None => {
                                        r.insert("value".into(), Value::Null);
                                        r.insert("revision".into(), Value::Null);
                                    }
                                }
                            }
                            ReadResult::Scan {
                                line,
                                start,
                                end,
                                items,
                            } => {
                                r.insert("line".into(), json!(line));
                                r.insert("op".into(), Value::from("scan"));
                                put_bytes(&mut r, "start", start);
                                put_bytes(&mut r, "end", end);
                                r.insert(
                                    "items".into(),
                                    Value::Array(items.iter().map(entry_json).collect()),
                                );
                            }
                        }
                        Value::Object(r)
                    })
                    .collect();
                obj.insert("results".into(), Value::Array(results));
                self.json(obj)
            }
        }
    }

    /// One-shot `txn`: text prints `SUCCESS revision N` (`SUCCESS` alone when nothing was
    /// written) or `FAILURE`, then `get KEY: VALUE` (or `(not found)`) per get that ran.
    /// JSON: `{succeeded, revision, results: [{op: "put"|"del"|"get", key, found, value,
    /// revision}], served_level, session_token}` (`found` of a del: whether the key existed;
    /// `value` only for a get).
    pub fn one_shot(&mut self, txn: &TxnOutput) -> io::Result<()> {
        let revision = txn.version.as_ref().map(|v| v.revision);
        match self.format {
            Format::Text => {
                match (txn.succeeded, revision) {
                    (true, Some(r)) => writeln!(self.out, "SUCCESS revision {r}")?,
                    (true, None) => writeln!(self.out, "SUCCESS")?,
                    (false, Some(r)) => writeln!(self.out, "FAILURE revision {r}")?,
                    (false, None) => writeln!(self.out, "FAILURE")?,
                }
                for r in txn.results.iter().filter(|r| r.kind == TxnOpKind::Get) {
                    if r.found {
                        writeln!(self.out, "get {}: {}", lossy(&r.key), lossy(&r.value))?;
                    } else {
                        writeln!(self.out, "get {}: (not found)", lossy(&r.key))?;
                    }
                }
                Ok(())
            }
            Format::Json => {
                let mut obj = Map::new();
                obj.insert("succeeded".into(), Value::from(txn.succeeded));
                obj.insert("revision".into(), json!(revision));
                let results = txn
                    .results
                    .iter()
                    .map(|r| {
                        let mut o = Map::new();
                        o.insert("op".into(), Value::from(r.kind.name()));
                        put_bytes(&mut o, "key", &r.key);
                        o.insert("found".into(), Value::from(r.found));
                        if r.kind == TxnOpKind::Get {
                            if r.found {
                                put_bytes(&mut o, "value", &r.value);
                            } else {
                                o.insert("value".into(), Value::Null);
                            }
                        }
                        o.insert(
                            "revision".into(),
                            json!(r.version.as_ref().map(|v| v.revision)),
                        );
                        Value::Object(o)
                    })
                    .collect();
                obj.insert("results".into(), Value::Array(results));
                put_meta(&mut obj, Some(&txn.meta), None);
                self.json(obj)
            }
        }
    }

    /// `ns drop`: text prints `OK`; JSON `{name, dropped: true}`.
    pub fn dropped(&mut self, name: &str) -> io::Result<()> {
        match self.format {
            Format::Text => self.out.write_all(b"OK\n"),
            Format::Json => {
                let mut obj = Map::new();
                obj.insert("name".into(), Value::from(name));
                obj.insert("dropped".into(), Value::from(true));
                self.json(obj)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Level, Version};
    use bytes::Bytes;
    use dialkv_consistency::session_token::SessionToken;

    fn meta() -> ResponseMeta {
        let mut token = SessionToken::new();
        token.observe_write("default", 1, 4);
        ResponseMeta {
            served_level: Level::Linearizable,
            session_token: token,
            ..ResponseMeta::default()
        }
    }

    fn got(value: &'static [u8]) -> GetOutput {
        GetOutput {
            entry: Some(Entry {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(value),
                version: Version {
                    revision: 4,
                    context: Bytes::new(),
                },
            }),
            siblings: Vec::new(),
            context: Bytes::new(),
            meta: meta(),
        }
    }

    fn printed(format: Format, f: impl FnOnce(&mut Printer<Vec<u8>>) -> io::Result<()>) -> Vec<u8> {
        let mut p = Printer::new(format, Vec::new());
        f(&mut p).expect("writes to a Vec");
        p.into_inner()
    }

    #[test]
    fn text_get_prints_the_raw_value() {
        assert_eq!(
            printed(Format::Text, |p| p.get(b"k", &got(b"v\xff1"), None)),
            b"v\xff1"
        );
    }

    #[test]
    fn json_get_uses_strings_or_base64() {
        let out = printed(Format::Json, |p| p.get(b"k", &got(b"hello"), None));
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["key"], "k");
        assert_eq!(v["value"], "hello");
        assert_eq!(v["revision"], 4);
        assert_eq!(v["found"], true);
        assert_eq!(v["served_level"], "linearizable");
        assert_eq!(v["session_token"], meta().session_token.to_string());
        let out = printed(Format::Json, |p| p.get(b"k", &got(b"\xff\x00"), None));
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v.get("value"), None);
        assert_eq!(v["value_base64"], "/wA=");
        let absent = GetOutput {
            entry: None,
            siblings: Vec::new(),
            context: Bytes::new(),
            meta: meta(),
        };
        let out = printed(Format::Json, |p| p.get(b"k", &absent, None));
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["found"], false);
        assert_eq!(v["value"], Value::Null);
    }

    #[test]
    fn text_scan_and_delete() {
        let items = [got(b"1").entry.expect("entry")];
        assert_eq!(
            printed(Format::Text, |p| p.scan(&items, false, None, None)),
            b"k\t1\n"
        );
        let del = DeleteOutput {
            existed: true,
            version: None,
            meta: meta(),
        };
        assert_eq!(
            printed(Format::Text, |p| p.delete(b"k", &del, None)),
            b"1\n"
        );
    }

    fn cluster() -> ClusterStatus {
        use crate::Role;
        ClusterStatus {
            leader_id: Some(1),
            nodes: vec![
                NodeStatus {
                    id: 1,
                    address: "127.0.0.1:7201".into(),
                    role: Role::Leader,
                    reachable: true,
                    voter: true,
                    term: 3,
                    last_log_index: 42,
                    commit_index: 42,
                    applied_index: 42,
                    lag_versions: 0,
                    lag_ms: Some(12),
                    leader_id: Some(1),
                },
                NodeStatus {
                    id: 2,
                    address: "127.0.0.1:7202".into(),
                    role: Role::Learner,
                    reachable: true,
                    voter: false,
                    term: 3,
                    last_log_index: 40,
                    commit_index: 40,
                    applied_index: 38,
                    lag_versions: 2,
                    lag_ms: None,
                    leader_id: Some(1),
                },
                NodeStatus {
                    id: 13,
                    address: "127.0.0.1:7203".into(),
                    role: Role::Unreachable,
                    reachable: false,
                    voter: true,
                    ..NodeStatus::default()
                },
            ],
        }
    }

    #[test]
    fn text_cluster_status_is_an_aligned_table() {
        let out = printed(Format::Text, |p| p.cluster_status(&cluster()));
        let text = String::from_utf8(out).expect("utf-8");
        let expected = "\
ID  ADDRESS         ROLE         VOTER  TERM  APPLIED  LAG_VERSIONS  LAG_MS  REACHABLE
1   127.0.0.1:7201  leader       true   3     42       0             12      true
2   127.0.0.1:7202  learner      false  3     38       2             -       true
13  127.0.0.1:7203  unreachable  true   -     -        -             -       false
";
        assert_eq!(text, expected);
        let empty = printed(Format::Text, |p| {
            p.cluster_status(&ClusterStatus::default())
        });
        assert_eq!(
            String::from_utf8(empty).expect("utf-8"),
            "ID  ADDRESS  ROLE  VOTER  TERM  APPLIED  LAG_VERSIONS  LAG_MS  REACHABLE\n"
        );
    }

    #[test]
    fn json_cluster_status_has_nulls_for_unknowns() {
        let out = printed(Format::Json, |p| p.cluster_status(&cluster()));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["leader_id"], 1);
        let nodes = v["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0]["role"], "leader");
        assert_eq!(nodes[0]["lag_ms"], 12);
        assert_eq!(nodes[0]["applied_index"], 42);
        assert_eq!(nodes[1]["voter"], false);
        assert_eq!(nodes[1]["lag_ms"], Value::Null);
        assert_eq!(nodes[1]["lag_versions"], 2);
        assert_eq!(nodes[2]["reachable"], false);
        assert_eq!(nodes[2]["term"], Value::Null);
        assert_eq!(nodes[2]["leader_id"], Value::Null);
        assert_eq!(nodes[2]["address"], "127.0.0.1:7203");
        let none = printed(Format::Json, |p| {
            p.cluster_status(&ClusterStatus::default())
        });
        let v: Value = serde_json::from_slice(&none).expect("json");
        assert_eq!(v["leader_id"], Value::Null);
    }

    fn reads() -> Vec<ReadResult> {
        vec![
            ReadResult::Get {
                line: 2,
                key: Bytes::from_static(b"alice"),
                entry: got(b"10").entry,
            },
            ReadResult::Get {
                line: 3,
                key: Bytes::from_static(b"carol"),
                entry: None,
            },
            ReadResult::Scan {
                line: 5,
                start: Bytes::from_static(b"a"),
                end: Bytes::new(),
                items: vec![got(b"10").entry.expect("entry")],
            },
        ]
    }

    #[test]
    fn txn_text_prints_reads_then_the_outcome() {
        let committed = TxnOutcome::Committed {
            revision: Some(17),
            snapshot_revision: 16,
            attempts: 2,
        };
        let out = printed(Format::Text, |p| p.txn(&reads(), &committed));
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "get alice: 10\nget carol: (not found)\nscan a \"\": 1 key\nk\t10\nCOMMITTED revision 17\n"
        );
        let read_only = TxnOutcome::Committed {
            revision: None,
            snapshot_revision: 16,
            attempts: 1,
        };
        let out = printed(Format::Text, |p| p.txn(&[], &read_only));
        assert_eq!(out, b"COMMITTED read-only snapshot 16\n");
        let aborted = TxnOutcome::Aborted {
            reason: "TRANSACTION_CONFLICT".into(),
            message: "key bob changed".into(),
            attempts: 11,
        };
        let out = printed(Format::Text, |p| p.txn(&[], &aborted));
        assert_eq!(
            out,
            b"ABORTED TRANSACTION_CONFLICT after 11 attempts: key bob changed\n"
        );
    }

    #[test]
    fn txn_json_is_one_object() {
        let committed = TxnOutcome::Committed {
            revision: None,
            snapshot_revision: 16,
            attempts: 1,
        };
        let out = printed(Format::Json, |p| p.txn(&reads(), &committed));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["outcome"], "committed");
        assert_eq!(v["revision"], Value::Null);
        assert_eq!(v["snapshot_revision"], 16);
        let results = v["results"].as_array().expect("results");
        assert_eq!(results[0]["line"], 2);
        assert_eq!(results[0]["value"], "10");
        assert_eq!(results[0]["revision"], 4);
        assert_eq!(results[1]["found"], false);
        assert_eq!(results[2]["op"], "scan");
        assert_eq!(results[2]["end"], "");
        assert_eq!(results[2]["items"][0]["key"], "k");
        let aborted = TxnOutcome::Aborted {
            reason: "SNAPSHOT_TOO_OLD".into(),
            message: "m".into(),
            attempts: 3,
        };
        let v: Value =
            serde_json::from_slice(&printed(Format::Json, |p| p.txn(&[], &aborted))).expect("json");
        assert_eq!(
            (
                v["outcome"].clone(),
                v["reason"].clone(),
                v["attempts"].clone()
            ),
            (json!("aborted"), json!("SNAPSHOT_TOO_OLD"), json!(3))
        );
    }

    #[test]
    fn one_shot_output() {
        use crate::TxnOpResult;
        let result =
            |kind, key: &'static [u8], found, value: &'static [u8], rev: Option<u64>| TxnOpResult {
                kind,
                key: Bytes::from_static(key),
                found,
                value: Bytes::from_static(value),
                version: rev.map(|revision| Version {
                    revision,
                    context: Bytes::new(),
                }),
            };
        let txn = TxnOutput {
            succeeded: true,
            results: vec![
                result(TxnOpKind::Put, b"k", true, b"", Some(18)),
                result(TxnOpKind::Get, b"g", true, b"v", Some(3)),
                result(TxnOpKind::Get, b"h", false, b"", None),
            ],
            version: Some(Version {
                revision: 18,
                context: Bytes::new(),
            }),
            meta: meta(),
        };
        assert_eq!(
            printed(Format::Text, |p| p.one_shot(&txn)),
            b"SUCCESS revision 18\nget g: v\nget h: (not found)\n"
        );
        let v: Value =
            serde_json::from_slice(&printed(Format::Json, |p| p.one_shot(&txn))).expect("json");
        assert_eq!(v["succeeded"], true);
        assert_eq!(v["revision"], 18);
        assert_eq!(v["results"][0]["op"], "put");
        assert_eq!(v["results"][0].get("value"), None);
        assert_eq!(v["results"][1]["value"], "v");
        assert_eq!(v["results"][2]["value"], Value::Null);
        let failed = TxnOutput {
            succeeded: false,
            results: vec![],
            version: None,
            meta: meta(),
        };
        assert_eq!(printed(Format::Text, |p| p.one_shot(&failed)), b"FAILURE\n");
    }

    #[test]
    fn membership_output() {
        let m = Membership {
            voters: vec![1, 2, 3],
            learners: vec![],
        };
        assert_eq!(
            printed(Format::Text, |p| p.membership(&m)),
            b"voters: 1,2,3\nlearners: \n"
        );
        let v: Value =
            serde_json::from_slice(&printed(Format::Json, |p| p.membership(&m))).expect("json");
        assert_eq!(v, json!({"voters": [1, 2, 3], "learners": []}));
    }
}
