//! The verdict every checker returns, and the witness that backs an `Invalid` one.
//!
//! A checker answers one of three things (as Jepsen's checkers do, with `:valid?` being
//! `true`, `false` or `:unknown`):
//!
//! - [`Verdict::Valid`]: the history satisfies the model;
//! - [`Verdict::Invalid`]: it does not, and here is the smallest evidence found: the anomaly's
//!   name (e.g. `"stale-read"`, `"G1c"`), the few operations involved with their times, and an
//!   explanation a person can follow;
//! - [`Verdict::Unknown`]: the checker could not decide (search budget spent, unsupported
//!   operation, ...), with the reason.
//!
//! Verdicts serialise to JSON (`verdict.json` in a jepsen report) with a `"result"` tag of
//! `"valid"`, `"invalid"` or `"unknown"`. [`Verdict::merge`] combines the verdicts of
//! independent parts (e.g. per key): any `Invalid` wins, then any `Unknown`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{EventIndex, Op, OpKind, ProcessId, SessionId};

/// One operation cited as evidence in an [`Verdict::Invalid`] verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WitnessOp {
    /// Index of the operation's invoke event.
    pub index: EventIndex,
    /// The client process.
    pub process: ProcessId,
    /// The client session.
    pub session: SessionId,
    /// Operation name.
    pub f: String,
    /// The key, if any.
    pub key: Option<String>,
    /// The invocation value (argument).
    pub invoke_value: Value,
    /// The outcome value (what was read or written).
    pub value: Value,
    /// How the operation ended.
    pub kind: OpKind,
    /// Invocation time, ns.
    pub invoke_ns: u64,
    /// Completion time, ns; `None` for `info` operations.
    pub complete_ns: Option<u64>,
    /// The replica that served it, when known.
    pub node: Option<String>,
    /// The operation's role in the anomaly ("stale read", "overwritten by", ...), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl WitnessOp {
    /// Returns a copy of this witness entry with its role in the anomaly set.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }
}

impl From<&Op> for WitnessOp {
    fn from(op: &Op) -> Self {
        WitnessOp {
            index: op.index,
            process: op.process,
            session: op.session,
            f: op.f.clone(),
            key: op.key.clone(),
            invoke_value: op.invoke_value.clone(),
            value: op.value.clone(),
            kind: op.kind,
            invoke_ns: op.invoke_ns,
            complete_ns: op.complete_ns,
            node: op.node.clone(),
            role: None,
        }
    }
}

impl fmt::Display for WitnessOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            OpKind::Ok => "ok",
            OpKind::Fail => "fail",
            OpKind::Info => "info",
        };
        write!(
            f,
            "#{} p{} s{} {}",
            self.index, self.process, self.session, self.f
        )?;
        if let Some(k) = &self.key {
            write!(f, " {k}")?;
        }
        if self.f == "cas" || (self.invoke_value != self.value && !self.invoke_value.is_null()) {
            write!(f, " {} -> {}", self.invoke_value, self.value)?;
        } else {
            write!(f, " {}", self.value)?;
        }
        write!(f, " {kind} [{} ns, ", self.invoke_ns)?;
        match self.complete_ns {
            Some(t) => write!(f, "{t} ns]")?,
            None => write!(f, "never)")?,
        }
        if let Some(n) = &self.node {
            write!(f, " on {n}")?;
        }
        if let Some(r) = &self.role {
            write!(f, "  <- {r}")?;
        }
        Ok(())
    }
}

/// The outcome of a consistency check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Verdict {
    /// The history satisfies the model.
    Valid,
    /// The history violates the model; the witness is the smallest evidence found.
    Invalid {
        /// Short anomaly name, e.g. `"nonlinearizable"`, `"stale-read"`, `"G-single"`.
        anomaly: String,
        /// The operations involved, in history order, with their times.
        witness: Vec<WitnessOp>,
        /// A sentence or two a person can check against the witness.
        explanation: String,
    },
    /// The checker could not decide.
    Unknown {
        /// Why (budget exhausted, unsupported operation, ...).
        reason: String,
    },
}

impl Verdict {
    /// Builds an `Invalid` verdict.
    pub fn invalid(
        anomaly: impl Into<String>,
        witness: Vec<WitnessOp>,
        explanation: impl Into<String>,
    ) -> Verdict {
        Verdict::Invalid {
            anomaly: anomaly.into(),
            witness,
            explanation: explanation.into(),
        }
    }

    /// Builds an `Unknown` verdict.
    pub fn unknown(reason: impl Into<String>) -> Verdict {
        Verdict::Unknown {
            reason: reason.into(),
        }
    }

    /// Returns true for `Valid`.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }

    /// Returns true for `Invalid`.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid { .. })
    }

    /// Returns true for `Unknown`.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Verdict::Unknown { .. })
    }

    /// Returns the anomaly name of an `Invalid` verdict.
    pub fn anomaly(&self) -> Option<&str> {
        match self {
            Verdict::Invalid { anomaly, .. } => Some(anomaly),
            _ => None,
        }
    }

    /// Returns the witness of an `Invalid` verdict (empty otherwise).
    pub fn witness(&self) -> &[WitnessOp] {
        match self {
            Verdict::Invalid { witness, .. } => witness,
            _ => &[],
        }
    }

    /// Combines verdicts of independent parts of one check (e.g. per key): the first
    /// `Invalid` wins; else the first `Unknown`; else `Valid`.
    pub fn merge(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut unknown = None;
        for v in verdicts {
            match v {
                Verdict::Invalid { .. } => return v,
                Verdict::Unknown { .. } if unknown.is_none() => unknown = Some(v),
                _ => {}
            }
        }
        unknown.unwrap_or(Verdict::Valid)
    }

    /// Returns the process exit code `dialkv-check` uses: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid { .. } => 1,
            Verdict::Unknown { .. } => 2,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid => write!(f, "valid"),
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
            Verdict::Invalid {
                anomaly,
                witness,
                explanation,
            } => {
                writeln!(f, "invalid: {anomaly}")?;
                writeln!(f, "  {explanation}")?;
                if !witness.is_empty() {
                    write!(f, "  witness:")?;
                    for w in witness {
                        write!(f, "\n    {w}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::json;

    fn sample_op() -> Op {
        let mut b = HistoryBuilder::new();
        b.invoke(2, "read", "k", Value::Null, 10);
        b.ok(2, "read", "k", json!(7), 20);
        b.build().expect("well-formed").ops()[0].clone()
    }

    #[test]
    fn serialises_with_a_result_tag() {
        let v = Verdict::invalid(
            "stale-read",
            vec![WitnessOp::from(&sample_op()).with_role("read")],
            "read 7 after 8 was written",
        );
        let j = serde_json::to_value(&v).expect("serialises");
        assert_eq!(j["result"], "invalid");
        assert_eq!(j["anomaly"], "stale-read");
        assert_eq!(j["witness"][0]["invoke_ns"], 10);
        let back: Verdict = serde_json::from_value(j).expect("deserialises");
        assert_eq!(back, v);
        assert_eq!(
            serde_json::to_value(Verdict::Valid).expect("ok")["result"],
            "valid"
        );
    }

    #[test]
    fn display_shows_the_witness() {
        let v = Verdict::invalid("x", vec![WitnessOp::from(&sample_op())], "because");
        let s = v.to_string();
        assert!(s.contains("invalid: x"), "{s}");
        assert!(s.contains("#0 p2 s2 read k 7 ok [10 ns, 20 ns]"), "{s}");
        assert_eq!(Verdict::unknown("budget").to_string(), "unknown: budget");
    }

    #[test]
    fn merge_prefers_invalid_then_unknown() {
        let inv = Verdict::invalid("a", vec![], "e");
        let unk = Verdict::unknown("r");
        assert_eq!(
            Verdict::merge(vec![Verdict::Valid, unk.clone(), inv.clone()]),
            inv
        );
        assert_eq!(Verdict::merge(vec![Verdict::Valid, unk.clone()]), unk);
        assert_eq!(Verdict::merge(vec![]), Verdict::Valid);
        assert_eq!(inv.exit_code(), 1);
        assert_eq!(unk.exit_code(), 2);
        assert_eq!(Verdict::Valid.exit_code(), 0);
    }
}
