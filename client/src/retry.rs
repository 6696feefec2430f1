//! Which failed attempts the client retries, how long it waits, and how a call's last failure
//! is reported.
//!
//! The rules (DESIGN.md §3 and §5, `types.proto`):
//! - UNAVAILABLE / `NOT_LEADER` naming the primary's address is retried there: the replica
//!   knew the primary but could not forward to it (the request was itself forwarded, or the
//!   primary changed). Without an address it is retried at the next endpoint.
//! - Other UNAVAILABLE is retried at the next endpoint (the replica may be down, shutting
//!   down, partitioned from its quorum (`NO_QUORUM`), behind the session (`SESSION_BEHIND`)
//!   or over a staleness bound (`STALENESS_BOUND_EXCEEDED`): the last two ask the client to
//!   try another replica).
//! - RESOURCE_EXHAUSTED with reason `WRITE_QUEUE_FULL` is retried at the same endpoint.
//! - ABORTED is retried for plain reads only; an aborted write is the caller's to redo, and
//!   an ABORTED answer inside an interactive transaction ([`CallKind::Transaction`],
//!   [`CallKind::Commit`]) ends the transaction attempt: [`crate::transaction`] re-runs it.
//! - A commit's ABORTED is definite even after an attempt that may have applied: the server
//!   answers a resent commit (same request id) from its first outcome, and with
//!   `TRANSACTION_UNKNOWN` when the first never committed.
//! - A write whose attempt failed after the request may have been sent is retried only when
//!   it carries a request id (the server then applies it at most once); if the call still
//!   fails, its outcome is unknown and it is reported as [`Error::Indeterminate`], whatever
//!   later attempts answered.
//! - DEADLINE_EXCEEDED and CANCELLED end the call; for a write they leave its outcome unknown
//!   (`COMMIT_TIMEOUT` is the server saying so).
//! - FAILED_PRECONDITION (e.g. `MEMBERSHIP_CHANGE_REFUSED`) and other client errors end the
//!   call.
//!
//! Waits are exponential with jitter ("equal jitter": half fixed, half random), never shorter
//! than the server's `RetryInfo` delay, and never past the call's deadline.

use std::time::Duration;

use rand::Rng;
use tonic::Code;

use crate::error::{reason, Error, ErrorStatus};

/// What kind of call is being retried; it decides what is safe to repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// A read: repeating it changes nothing.
    Read,
    /// A write with a request id: the server applies it at most once however often it is sent.
    IdempotentWrite,
    /// A write without a request id (namespace create and drop): it is repeated only when
    /// the earlier attempt certainly did not apply.
    Write,
    /// `Begin`, a read inside an interactive transaction, or `Abort`: served by the primary,
    /// repeating it writes nothing, but ABORTED ends the call (the transaction is gone).
    Transaction,
    /// An interactive transaction's `Commit`: a write with a request id whose ABORTED answer
    /// is definite (nothing was written), whatever earlier attempts of the call answered.
    Commit,
}

impl CallKind {
    /// Whether a call of this kind writes, so that a failure after it may have been sent
    /// leaves its outcome unknown.
    pub fn writes(self) -> bool {
        matches!(
            self,
            CallKind::IdempotentWrite | CallKind::Write | CallKind::Commit
        )
    }
}

/// Where to send the next attempt of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The same endpoint.
    Same,
    /// Another endpoint (the next one in the client's list).
    Other,
    /// The primary at this address (`host:port`), as a `NOT_LEADER` answer named it.
    Leader(String),
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try again after a backoff, at `next`.
    Retry {
        /// Where to send the retry.
        next: Next,
    },
    /// End the call with this failure.
    Stop,
}

/// Decides whether a call of `kind` whose attempt failed with `status` is retried.
pub fn decide(kind: CallKind, status: &ErrorStatus) -> Decision {
    let unsafe_to_repeat = kind == CallKind::Write && status.write_may_have_applied();
    let retry = |next| Decision::Retry { next };
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled => Decision::Stop,
        Code::Unavailable if status.is_not_leader() => match status.leader_address() {
            Some(address) => retry(Next::Leader(address.to_string())),
            None => retry(Next::Other),
        },
        Code::Unavailable if !unsafe_to_repeat => retry(Next::Other),
        Code::ResourceExhausted if status.reason() == Some(reason::WRITE_QUEUE_FULL) => {
            retry(Next::Same)
        }
        Code::ResourceExhausted
            if kind == CallKind::Transaction
                && status.reason() == Some(reason::TOO_MANY_TRANSACTIONS) =>
        {
            retry(Next::Same)
        }
        Code::Aborted if kind == CallKind::Read => retry(Next::Same),
        // A transport failure mid-call (a reset stream shows up as UNKNOWN or INTERNAL without
        // the server's ErrorInfo): repeat where repeating is safe, elsewhere.
        Code::Unknown | Code::Internal
            if !status.is_from_server() && status.write_may_have_applied() && !unsafe_to_repeat =>
        {
            retry(Next::Other)
        }
        _ => Decision::Stop,
    }
}

/// The error a call of `kind` reports when its last attempt failed with `status`;
/// `maybe_applied` says whether any earlier attempt may have applied the write.
pub fn final_error(kind: CallKind, status: ErrorStatus, maybe_applied: bool) -> Error {
    if kind == CallKind::Commit && status.code() == Code::Aborted {
        return Error::Aborted(status);
    }
    if kind.writes() && (maybe_applied || status.write_may_have_applied()) {
        Error::Indeterminate(status)
    } else {
        Error::from_status(status)
    }
}

/// How many attempts a call makes and how long it waits between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the first retry (before jitter).
    pub base_delay: Duration,
    /// The longest wait between attempts (before honouring `RetryInfo`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, waits from 25 ms doubling up to 1 s: about 2 to 5 s of retrying in all
    /// (within the call's deadline), enough to ride out an election of a new primary.
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failed`-th failed attempt (1-based): exponential with equal jitter,
    /// at least the server's `hint`.
    pub fn backoff(&self, failed: u32, hint: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << failed.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(rand::rng().random_range(0..=jitter_ns));
        (half + jitter).max(hint.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: Code, why: &str) -> ErrorStatus {
        let mut details = tonic_types::ErrorDetails::new();
        details.set_error_info(
            why,
            crate::error::ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        let status =
            <tonic::Status as tonic_types::StatusExt>::with_error_details(code, "msg", details);
        ErrorStatus::from_tonic(&status)
    }

    fn not_leader(hint: Option<(&str, &str)>) -> ErrorStatus {
        let mut details = tonic_types::ErrorDetails::new();
        let metadata: std::collections::HashMap<String, String> = hint
            .map(|(id, address)| {
                [
                    (crate::error::LEADER_ID_KEY.to_string(), id.to_string()),
                    (
                        crate::error::LEADER_ADDRESS_KEY.to_string(),
                        address.to_string(),
                    ),
                ]
                .into()
            })
            .unwrap_or_default();
        details.set_error_info(reason::NOT_LEADER, crate::error::ERROR_DOMAIN, metadata);
        details.set_retry_info(Some(Duration::from_millis(50)));
        let status = <tonic::Status as tonic_types::StatusExt>::with_error_details(
            Code::Unavailable,
            "replica 1 is not the primary",
            details,
        );
        ErrorStatus::from_tonic(&status)
    }

    fn transport(code: Code) -> ErrorStatus {
        ErrorStatus::local(code, "connection reset")
    }

    use CallKind::*;
    use Decision::*;
    use Next::*;

    #[test]
    fn unavailable_rotates_for_every_kind_when_nothing_was_written() {
        for kind in [Read, IdempotentWrite, Write] {
            for why in [
                reason::SESSION_BEHIND,
                reason::STALENESS_BOUND_EXCEEDED,
                reason::NO_QUORUM,
                reason::SHUTTING_DOWN,
                reason::STORAGE_FAILURE,
            ] {
                assert_eq!(
                    decide(kind, &server(Code::Unavailable, why)),
                    Retry { next: Other },
                    "{kind:?} {why}"
                );
            }
        }
    }

    #[test]
    fn not_leader_follows_the_hint_for_every_kind() {
        let hinted = not_leader(Some(("2", "10.0.0.2:7401")));
        assert_eq!(hinted.leader_id(), Some(2));
        assert_eq!(hinted.leader_address(), Some("10.0.0.2:7401"));
        assert!(!hinted.write_may_have_applied());
        let unknown = not_leader(None);
        assert_eq!(
            (unknown.leader_id(), unknown.leader_address()),
            (None, None)
        );
        for kind in [Read, IdempotentWrite, Write] {
            assert_eq!(
                decide(kind, &hinted),
                Retry {
                    next: Leader("10.0.0.2:7401".into())
                },
                "{kind:?}"
            );
            assert_eq!(decide(kind, &unknown), Retry { next: Other }, "{kind:?}");
        }
        // NOT_LEADER is definite: nothing was written.
        assert!(matches!(
            final_error(IdempotentWrite, hinted, false),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn stopped_replication_leaves_a_write_unknown() {
        let stopped = server(Code::Unavailable, reason::REPLICATION_STOPPED);
        assert!(stopped.write_may_have_applied());
        assert_eq!(decide(Read, &stopped), Retry { next: Other });
        // With a request id the retry is deduplicated; without one it could apply twice.
        assert_eq!(decide(IdempotentWrite, &stopped), Retry { next: Other });
        assert_eq!(decide(Write, &stopped), Stop);
        assert!(final_error(IdempotentWrite, stopped.clone(), false).is_indeterminate());
        assert!(matches!(
            final_error(Read, stopped, false),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn commit_timeout_ends_a_write_as_indeterminate() {
        let late = server(Code::DeadlineExceeded, reason::COMMIT_TIMEOUT);
        for kind in [IdempotentWrite, Write] {
            assert_eq!(decide(kind, &late), Stop);
            let err = final_error(kind, late.clone(), false);
            assert!(err.is_indeterminate(), "{kind:?}: {err:?}");
            assert_eq!(err.reason(), Some(reason::COMMIT_TIMEOUT));
        }
        assert!(matches!(
            final_error(Read, late, false),
            Error::DeadlineExceeded(_)
        ));
    }

    #[test]
    fn refused_membership_changes_end_the_call() {
        let refused = server(Code::FailedPrecondition, reason::MEMBERSHIP_CHANGE_REFUSED);
        assert_eq!(decide(Write, &refused), Stop);
        assert!(matches!(
            final_error(Write, refused, false),
            Error::FailedPrecondition(_)
        ));
    }

    #[test]
    fn full_write_queue_is_retried_in_place() {
        assert_eq!(
            decide(
                IdempotentWrite,
                &server(Code::ResourceExhausted, reason::WRITE_QUEUE_FULL)
            ),
            Retry { next: Same }
        );
        assert_eq!(
            decide(
                IdempotentWrite,
                &server(Code::ResourceExhausted, "NAMESPACE_IDS_EXHAUSTED")
            ),
            Stop
        );
    }

    #[test]
    fn aborted_is_retried_for_reads_only() {
        assert_eq!(
            decide(Read, &server(Code::Aborted, "CONFLICT")),
            Retry { next: Same }
        );
        assert_eq!(
            decide(IdempotentWrite, &server(Code::Aborted, "CONFLICT")),
            Stop
        );
        assert_eq!(decide(Write, &server(Code::Aborted, "CONFLICT")), Stop);
    }

    #[test]
    fn transport_failures_are_retried_only_where_repeating_is_safe() {
        for code in [Code::Unavailable, Code::Unknown, Code::Internal] {
            assert_eq!(
                decide(Read, &transport(code)),
                Retry { next: Other },
                "{code:?}"
            );
            assert_eq!(
                decide(IdempotentWrite, &transport(code)),
                Retry { next: Other }
            );
            assert_eq!(decide(Write, &transport(code)), Stop, "{code:?}");
        }
    }

    #[test]
    fn deadlines_and_client_errors_end_the_call() {
        for kind in [Read, IdempotentWrite, Write] {
            assert_eq!(decide(kind, &transport(Code::DeadlineExceeded)), Stop);
            assert_eq!(decide(kind, &transport(Code::Cancelled)), Stop);
            assert_eq!(
                decide(kind, &server(Code::InvalidArgument, reason::KEY_EMPTY)),
                Stop
            );
            assert_eq!(
                decide(kind, &server(Code::NotFound, reason::NAMESPACE_NOT_FOUND)),
                Stop
            );
            assert_eq!(decide(kind, &server(Code::Internal, "BUG")), Stop);
        }
    }

    #[test]
    fn unknown_write_outcomes_are_indeterminate() {
        let late = transport(Code::DeadlineExceeded);
        assert!(final_error(IdempotentWrite, late.clone(), false).is_indeterminate());
        assert!(final_error(Write, late.clone(), false).is_indeterminate());
        assert!(matches!(
            final_error(Read, late, false),
            Error::DeadlineExceeded(_)
        ));
        // A definite refusal after an attempt that may have applied is still unknown.
        let full = server(Code::ResourceExhausted, reason::WRITE_QUEUE_FULL);
        assert!(final_error(IdempotentWrite, full.clone(), true).is_indeterminate());
        assert!(matches!(
            final_error(IdempotentWrite, full, false),
            Error::ResourceExhausted(_)
        ));
        assert!(matches!(
            final_error(Read, transport(Code::Unavailable), true),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn transaction_calls_stop_on_aborted_and_never_leave_a_write_unknown() {
        for why in [
            reason::TRANSACTION_UNKNOWN,
            reason::TRANSACTION_EXPIRED,
            reason::SNAPSHOT_TOO_OLD,
        ] {
            assert_eq!(decide(Transaction, &server(Code::Aborted, why)), Stop);
        }
        // Begin, reads and Abort write nothing: a lost reply is not indeterminate.
        assert_eq!(
            decide(Transaction, &transport(Code::Unknown)),
            Retry { next: Other }
        );
        assert!(matches!(
            final_error(Transaction, transport(Code::DeadlineExceeded), true),
            Error::DeadlineExceeded(_)
        ));
        // A full transaction table is retried in place (the server sends RetryInfo).
        assert_eq!(
            decide(
                Transaction,
                &server(Code::ResourceExhausted, reason::TOO_MANY_TRANSACTIONS)
            ),
            Retry { next: Same }
        );
        assert_eq!(
            decide(
                IdempotentWrite,
                &server(Code::ResourceExhausted, reason::TOO_MANY_TRANSACTIONS)
            ),
            Stop
        );
    }

    #[test]
    fn a_commit_is_resent_with_its_id_and_aborted_is_definite() {
        assert_eq!(
            decide(Commit, &transport(Code::Unknown)),
            Retry { next: Other }
        );
        assert_eq!(
            decide(Commit, &server(Code::Aborted, reason::TRANSACTION_CONFLICT)),
            Stop
        );
        assert_eq!(
            decide(
                Commit,
                &server(Code::DeadlineExceeded, reason::COMMIT_TIMEOUT)
            ),
            Stop
        );
        assert_eq!(
            decide(
                Commit,
                &server(Code::DeadlineExceeded, reason::FORWARD_INTERRUPTED)
            ),
            Stop
        );
        // After an attempt that may have applied, ABORTED (the first outcome, or
        // TRANSACTION_UNKNOWN: it never committed) is still definite...
        let unknown = server(Code::Aborted, reason::TRANSACTION_UNKNOWN);
        assert!(matches!(
            final_error(Commit, unknown.clone(), true),
            Error::Aborted(_)
        ));
        // ...unlike for other writes, and other failures after it stay unknown.
        assert!(final_error(IdempotentWrite, unknown, true).is_indeterminate());
        assert!(
            final_error(Commit, server(Code::Unavailable, reason::NOT_LEADER), true)
                .is_indeterminate()
        );
        assert!(final_error(
            Commit,
            server(Code::DeadlineExceeded, reason::FORWARD_INTERRUPTED),
            false
        )
        .is_indeterminate());
    }

    #[test]
    fn backoff_grows_is_jittered_and_honours_retry_info() {
        let p = RetryPolicy::default();
        for failed in 1..=10 {
            let exp = p
                .base_delay
                .saturating_mul(1 << (failed - 1))
                .min(p.max_delay);
            for _ in 0..20 {
                let d = p.backoff(failed, None);
                assert!(d >= exp / 2 && d <= exp, "{failed}: {d:?} vs {exp:?}");
            }
        }
        assert!(p.backoff(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(p.backoff(u32::MAX, None) <= p.max_delay);
    }
}
