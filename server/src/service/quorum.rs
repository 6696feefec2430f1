//! Get, Put, Delete and Scan on quorum namespaces: the coordinator's choice of steps per
//! consistency level (DESIGN.md §4, quorum column).
//!
//! - LINEARIZABLE (and SEQUENTIAL, served as it): ABD on each key. A read reads R replicas
//!   and, unless R ≥ W of them already agree, writes the merged versions back to W before
//!   answering; a write first reads R replicas, then writes above the greatest stamp seen to
//!   W. Refused with INVALID_ARGUMENT when R + W ≤ N.
//! - CAUSAL: the replica waits (bounded) until it has applied the session's causal past
//!   (its read and write vectors), else UNAVAILABLE / SESSION_BEHIND; a write depends on
//!   everything applied here and, with W > 1, waits until W − 1 peers have applied it in
//!   causal order.
//! - EVENTUAL and BOUNDED_STALENESS: R replicas read (merged, repaired) and W written; the
//!   session guarantees asked for are each enforced with the token's vectors (Bayou);
//!   BOUNDED_STALENESS also needs this replica's known lag within the bound.

use std::time::Duration;

use bytes::Bytes;
use dialkv_consistency::clock::VectorClock;
use dialkv_consistency::session_token::SessionToken;
use dialkv_proto::v1;

use super::Node;
use crate::error::ServiceError;
use crate::limits::{self, check_consistency, MAX_SCAN_PAGE_BYTES};
use crate::quorum::applier::LocalWrite;
use crate::quorum::object::{self, Context, Object, Policy};
use crate::quorum::policy;
use crate::storage::store::NamespaceMeta;

use v1::ConsistencyLevel as L;

/// What a request will do.
struct Plan {
    level: L,
    strong: bool,
    r: usize,
    w: usize,
    policy: Policy,
}

fn plan(
    node: &Node,
    ns: &NamespaceMeta,
    c: Option<&v1::Consistency>,
) -> Result<Plan, ServiceError> {
    let q = &node.quorum;
    let n = q.replica_count();
    let level = check_consistency(c, true, n as u32)?;
    let strong = matches!(level, L::Linearizable | L::Sequential);
    let default = if strong { n / 2 + 1 } else { 1 };
    let pick = |asked: u32, spec: u32| -> usize {
        let v = if asked != 0 { asked } else { spec };
        if v == 0 {
            default
        } else {
            (v as usize).min(n)
        }
    };
    let c = c.cloned().unwrap_or_default();
    let (mut r, mut w) = (
        pick(c.read_quorum, ns.spec.read_quorum),
        pick(c.write_quorum, ns.spec.write_quorum),
    );
    if strong {
        if q.options.unsafe_weak_quorums {
            (r, w) = (1, 1);
        } else if r + w <= n {
            return Err(ServiceError::invalid(
                "consistency.read_quorum",
                "QUORUMS_DO_NOT_INTERSECT",
                format!("LINEARIZABLE needs R + W > N; R = {r} and W = {w} with N = {n} replicas"),
            ));
        }
    }
    Ok(Plan {
        level: if level == L::Sequential {
            L::Linearizable
        } else {
            level
        },
        strong,
        r,
        w,
        policy: policy(&ns.spec),
    })
}

/// The session's token and guarantees.
fn session(
    node: &Node,
    s: Option<&v1::Session>,
) -> Result<(SessionToken, v1::SessionGuarantees), ServiceError> {
    let Some(s) = s else {
        return Ok((SessionToken::new(), v1::SessionGuarantees::default()));
    };
    Ok((node.decode_token(s)?, s.guarantees.unwrap_or_default()))
}

/// Waits until this replica has applied what the session's guarantees need before a read
/// (`write = false`) or a write.
async fn admit(
    node: &Node,
    ns: &NamespaceMeta,
    token: &SessionToken,
    g: &v1::SessionGuarantees,
    level: L,
    write: bool,
) -> Result<(), ServiceError> {
    let p = token.progress(&ns.spec.name, u64::from(ns.id));
    let causal = level == L::Causal;
    // Reads: read-your-writes needs the session's writes, monotonic reads its reads. Writes:
    // monotonic writes needs its writes, writes-follow-reads its reads. CAUSAL needs both.
    let (on_writes, on_reads) = if write {
        (g.monotonic_writes, g.writes_follow_reads)
    } else {
        (g.read_your_writes, g.monotonic_reads)
    };
    let mut needed = VectorClock::new();
    if causal || on_writes {
        needed.merge(&p.write_vector);
    }
    if causal || on_reads {
        needed.merge(&p.read_vector);
    }
    if needed.is_empty() || node.quorum.wait_covered(&needed, node.session_wait).await {
        return Ok(());
    }
    Err(ServiceError::Unavailable {
        reason: "SESSION_BEHIND",
        message: format!(
            "replica {} has applied {}, behind the session's {needed} in namespace {:?}; try another replica",
            node.id,
            node.quorum.applied(),
            ns.spec.name
        ),
        retry_after: Some(Duration::from_millis(100)),
    })
}

fn check_staleness(node: &Node, c: Option<&v1::Consistency>) -> Result<(), ServiceError> {
    let c = c.cloned().unwrap_or_default();
    let (versions, time) = node.quorum.lag();
    let within_time =
        c.max_staleness_ms == 0 || time.is_some_and(|t| t.as_millis() as u64 <= c.max_staleness_ms);
    let within_versions = c.max_staleness_versions == 0 || versions <= c.max_staleness_versions;
    if within_time && within_versions {
        return Ok(());
    }
    let known = time.map_or("an unknown time".to_string(), |t| {
        format!("{} ms", t.as_millis())
    });
    Err(ServiceError::Unavailable {
        reason: "STALENESS_BOUND_EXCEEDED",
        message: format!(
            "replica {} is {versions} versions and {known} behind the other replicas, over the bound; try another replica",
            node.id
        ),
        retry_after: Some(Duration::from_millis(50)),
    })
}

/// The response header of a quorum request: the lag is this replica's behind the others.
fn header(node: &Node, level: L, token: &SessionToken) -> Option<v1::ResponseHeader> {
    node.header_with_lag(level, token, node.quorum.lag())
}

fn merged(objects: Vec<Option<Object>>, policy: Policy) -> (Object, bool) {
    let mut out = Object::new();
    for o in objects.iter().flatten() {
        out.sync(o);
    }
    object::settle(&mut out, policy);
    let agree = objects
        .iter()
        .all(|o| o.as_ref().map_or(out.is_empty(), |o| *o == out));
    (out, agree)
}

fn version_of(o: &Object, v: &object::Val) -> v1::Version {
    v1::Version {
        revision: v.stamp.revision(),
        context: Context::of(o).encode().into(),
    }
}

/// Reads a key at the levels of a quorum namespace.
pub async fn get(
    node: &Node,
    ns: &NamespaceMeta,
    req: &v1::GetRequest,
) -> Result<v1::GetResponse, ServiceError> {
    let q = &node.quorum;
    let plan = plan(node, ns, req.consistency.as_ref())?;
    let (mut token, g) = session(node, req.session.as_ref())?;
    // Guarantees a session asked for hold at every level, also when it mixes levels (a
    // write at W = 1 is not at R replicas yet).
    admit(node, ns, &token, &g, plan.level, false).await?;
    let obj = if plan.strong {
        let (obj, agree) = merged(q.read_quorum(ns.id, &req.key, plan.r).await?, plan.policy);
        if !(obj.is_empty() || (agree && plan.r >= plan.w)) {
            // ABD's write-back: the value returned is at W replicas before the answer.
            q.merge_local(vec![(ns.id, req.key.to_vec(), obj.clone(), plan.policy)])
                .await?;
            if let Err(have) = q
                .merge_quorum(ns.id, &req.key, &obj, plan.policy, plan.w)
                .await
            {
                return Err(ServiceError::Unavailable {
                    reason: "QUORUM_UNAVAILABLE",
                    message: format!(
                        "the read's write-back reached {have} of the {} replicas it needs; retry",
                        plan.w
                    ),
                    retry_after: Some(Duration::from_millis(100)),
                });
            }
        }
        token.observe_vector_read(&ns.spec.name, u64::from(ns.id), &object::positions(&obj));
        obj
    } else {
        if plan.level == L::BoundedStaleness {
            check_staleness(node, req.consistency.as_ref())?;
        }
        // What this replica had applied before a local read: all of it is visible to the read.
        let seen_here = (plan.r == 1).then(|| q.applied());
        let obj = if plan.r > 1 {
            let (obj, agree) = merged(q.read_quorum(ns.id, &req.key, plan.r).await?, plan.policy);
            if !agree && !obj.is_empty() {
                // Read repair: here at once, the others in the background.
                q.merge_local(vec![(ns.id, req.key.to_vec(), obj.clone(), plan.policy)])
                    .await?;
                let (q2, key, o, p, n) = (
                    q.clone(),
                    req.key.to_vec(),
                    obj.clone(),
                    plan.policy,
                    q.replica_count(),
                );
                let id = ns.id;
                tokio::spawn(async move {
                    let _ = q2.merge_quorum(id, &key, &o, p, n).await;
                });
            }
            obj
        } else {
            q.read_local(ns.id, &req.key).await?.unwrap_or_default()
        };
        let mut seen = seen_here.unwrap_or_default();
        seen.merge(&object::positions(&obj));
        token.observe_vector_read(&ns.spec.name, u64::from(ns.id), &seen);
        obj
    };
    let siblings = if plan.policy == Policy::Siblings && obj.len() > 1 {
        let mut all: Vec<&object::Val> = obj.values().collect();
        all.sort_by_key(|v| v.stamp);
        all.into_iter()
            .map(|v| v1::Sibling {
                value: v.value.clone().map(Bytes::from).unwrap_or_default(),
                deleted: v.value.is_none(),
                revision: v.stamp.revision(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(match object::visible(&obj) {
        Some(v) => v1::GetResponse {
            header: header(node, plan.level, &token),
            found: true,
            value: v.value.clone().map(Bytes::from).unwrap_or_default(),
            version: Some(version_of(&obj, v)),
            siblings,
        },
        None => v1::GetResponse {
            header: header(node, plan.level, &token),
            found: false,
            value: Bytes::new(),
            // A deleted key still has a context, so that a write can supersede the deletion.
            version: (!obj.is_empty()).then(|| v1::Version {
                revision: 0,
                context: Context::of(&obj).encode().into(),
            }),
            siblings,
        },
    })
}

/// What a write produced, for the response.
pub struct WriteDone {
    pub header: Option<v1::ResponseHeader>,
    pub version: v1::Version,
    pub existed: bool,
}

/// Writes (`value = None`: deletes) a key at the levels of a quorum namespace.
pub async fn write(
    node: &Node,
    ns: &NamespaceMeta,
    key: &Bytes,
    value: Option<Bytes>,
    context: &Bytes,
    consistency: Option<&v1::Consistency>,
    s: Option<&v1::Session>,
) -> Result<WriteDone, ServiceError> {
    let q = &node.quorum;
    let plan = plan(node, ns, consistency)?;
    // A replica that just started learns first how much of its own stream its peers hold.
    q.startup_sync().await;
    let context = match context.is_empty() {
        true => None,
        false => Some(check_context(node, context)?),
    };
    let (mut token, g) = session(node, s)?;
    admit(node, ns, &token, &g, plan.level, true).await?;
    // Monotonic writes and writes-follow-reads: the write depends on what the session wrote
    // and read (all applied here, by `admit`), and reaches others only after it.
    let ordered = plan.level == L::Causal || g.monotonic_writes || g.writes_follow_reads;
    let mut local = LocalWrite {
        ns: ns.id,
        key: key.to_vec(),
        value: value.map(|v| v.to_vec()),
        context,
        base: None,
        policy: plan.policy,
        causal: false,
    };
    let written = if plan.strong {
        // ABD's first phase: learn the greatest stamp (and every version) from R replicas.
        let (base, _) = merged(q.read_quorum(ns.id, key, plan.r).await?, plan.policy);
        local.base = Some(base);
        local.causal = ordered;
        let written = q.write_local(local).await?;
        if let Err(have) = q
            .merge_quorum(ns.id, key, &written.object, plan.policy, plan.w)
            .await
        {
            return Err(not_reached(have, plan.w));
        }
        written
    } else {
        local.causal = ordered;
        let written = q.write_local(local).await?;
        if plan.w > 1 {
            if ordered {
                // Acknowledged once W − 1 peers have applied it, in causal order (a direct
                // merge could show it somewhere before what it depends on).
                let have = q.wait_acked(written.seq, plan.w - 1).await + 1;
                if have < plan.w {
                    return Err(not_reached(have, plan.w));
                }
            } else if let Err(have) = q
                .merge_quorum(ns.id, key, &written.object, plan.policy, plan.w)
                .await
            {
                return Err(not_reached(have, plan.w));
            }
        }
        written
    };
    token.observe_vector_write(
        &ns.spec.name,
        u64::from(ns.id),
        &VectorClock::from_entries([(node.id, written.seq)]),
    );
    Ok(WriteDone {
        header: header(node, plan.level, &token),
        version: v1::Version {
            revision: written.stamp.revision(),
            context: Context::of(&written.object).encode().into(),
        },
        existed: written.existed,
    })
}

/// The longest a client's context may claim a version stamped ahead of this replica's clock.
const MAX_CONTEXT_AHEAD: Duration = Duration::from_secs(3600);

/// Decodes a client's causal context and refuses one no replica could have handed out: a
/// stamp far in the future, a counter near overflow, or writes of this replica it never
/// coordinated. Such a context would drag every replica's clock forward or make a write
/// reuse an identity.
fn check_context(node: &Node, bytes: &Bytes) -> Result<Context, ServiceError> {
    let bad = |why: &str| {
        ServiceError::invalid(
            "context",
            "BAD_CONTEXT",
            format!(
                "is not a causal context of this namespace ({why}): send back the version.context of a read unchanged"
            ),
        )
    };
    let c = Context::decode(bytes).ok_or_else(|| bad("undecodable"))?;
    let now = crate::quorum::applier::wall_ns();
    if c.floor.ts.wall_ns > now.saturating_add(MAX_CONTEXT_AHEAD.as_nanos() as u64) {
        return Err(bad("its newest version is stamped more than an hour ahead"));
    }
    if c.clock.iter().any(|(_, n)| n > 1 << 62) {
        return Err(bad("a counter is out of range"));
    }
    if c.clock.get(node.id) > node.quorum.position() {
        // Only a replica that lost part of its data (restored from an older copy) and has
        // not heard from its peers yet can be behind a context: retryable, elsewhere.
        return Err(ServiceError::Unavailable {
            reason: "CONTEXT_AHEAD",
            message: format!(
                "the context names writes of replica {} past what it knows of; try another replica",
                node.id
            ),
            retry_after: Some(Duration::from_millis(200)),
        });
    }
    Ok(c)
}

fn not_reached(have: usize, w: usize) -> ServiceError {
    ServiceError::Indeterminate {
        reason: "QUORUM_NOT_REACHED",
        message: format!(
            "the write is stored on {have} of the {w} replicas it needs; it may still reach the others"
        ),
    }
}

/// Scans a range of a quorum namespace at this replica (CAUSAL, BOUNDED_STALENESS or
/// EVENTUAL; a scan is not linearizable under per-key quorums).
pub async fn scan(
    node: &Node,
    ns: &NamespaceMeta,
    req: &v1::ScanRequest,
    start: Vec<u8>,
) -> Result<v1::ScanResponse, ServiceError> {
    let q = &node.quorum;
    let plan = plan(node, ns, req.consistency.as_ref())?;
    if plan.strong {
        return Err(ServiceError::FailedPrecondition {
            reason: "LEVEL_UNAVAILABLE",
            message: format!(
                "consistency.level: scans of quorum namespace {:?} are served at CAUSAL, BOUNDED_STALENESS or EVENTUAL (quorums are per key)",
                ns.spec.name
            ),
        });
    }
    let limit = limits::scan_limit("limit", req.limit)?;
    let (mut token, g) = session(node, req.session.as_ref())?;
    admit(node, ns, &token, &g, plan.level, false).await?;
    if plan.level == L::BoundedStaleness {
        check_staleness(node, req.consistency.as_ref())?;
    }
    let seen = q.applied();
    let (items, more) = q
        .scan_local(
            ns.id,
            start,
            req.end_key.to_vec(),
            limit,
            MAX_SCAN_PAGE_BYTES,
        )
        .await?;
    let mut seen = seen;
    for (_, o) in &items {
        seen.merge(&object::positions(o));
    }
    token.observe_vector_read(&ns.spec.name, u64::from(ns.id), &seen);
    let continuation = match (more, items.last()) {
        (true, Some((last, _))) => {
            let mut c = Vec::with_capacity(1 + last.len());
            c.push(super::kv::CONTINUATION_V1);
            c.extend_from_slice(last);
            Bytes::from(c)
        }
        _ => Bytes::new(),
    };
    Ok(v1::ScanResponse {
        header: header(node, plan.level, &token),
        items: items
            .into_iter()
            .filter_map(|(k, o)| {
                let v = object::visible(&o)?;
                Some(v1::KeyValue {
                    key: k.into(),
                    value: v.value.clone().map(Bytes::from).unwrap_or_default(),
                    version: Some(version_of(&o, v)),
                })
            })
            .collect(),
        continuation,
    })
}
