//! The client's one error type, [`Error`], named by what the caller should do.
//!
//! Every failure the server answers with is a gRPC status carrying `google.rpc` details (see
//! `server/src/error.rs`): an `ErrorInfo` whose `reason` is a stable upper-case string, a
//! `BadRequest` field violation naming the offending field, and a `RetryInfo` delay for
//! retryable errors. [`ErrorStatus`] keeps all of them; [`Error`] sorts them by gRPC code so
//! that callers can `match` on what to do (fix the request, create the namespace, retry, or
//! reconcile an [`Error::Indeterminate`] write).
//!
//! As etcd names `ErrTimeoutDueToLeaderFail`, this type names the ambiguity of a write whose
//! outcome is unknown: it is [`Error::Indeterminate`], never reported as a plain failure.

use std::fmt;
use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

/// The `ErrorInfo.domain` of errors sent by a dialkv server.
pub const ERROR_DOMAIN: &str = "dialkv";

/// Stable reasons the dialkv server sends in `ErrorInfo.reason`.
pub mod reason {
    /// The namespace named in the request does not exist (NOT_FOUND).
    pub const NAMESPACE_NOT_FOUND: &str = "NAMESPACE_NOT_FOUND";
    /// The key is empty (INVALID_ARGUMENT).
    pub const KEY_EMPTY: &str = "KEY_EMPTY";
    /// The key is over the server's limit (INVALID_ARGUMENT).
    pub const KEY_TOO_LARGE: &str = "KEY_TOO_LARGE";
    /// The value is over the server's limit (INVALID_ARGUMENT).
    pub const VALUE_TOO_LARGE: &str = "VALUE_TOO_LARGE";
    /// The namespace name does not match `[a-z0-9_-]{1,64}` (INVALID_ARGUMENT).
    pub const BAD_NAMESPACE_NAME: &str = "BAD_NAMESPACE_NAME";
    /// The scan limit is over 10000 (INVALID_ARGUMENT).
    pub const SCAN_LIMIT_TOO_LARGE: &str = "SCAN_LIMIT_TOO_LARGE";
    /// An enum field holds a number outside the enum (INVALID_ARGUMENT).
    pub const UNKNOWN_ENUM_VALUE: &str = "UNKNOWN_ENUM_VALUE";
    /// The server's write queue is full; retry shortly (RESOURCE_EXHAUSTED, retryable).
    pub const WRITE_QUEUE_FULL: &str = "WRITE_QUEUE_FULL";
    /// The replica is behind the session token; try another (UNAVAILABLE, retryable).
    pub const SESSION_BEHIND: &str = "SESSION_BEHIND";
    /// The server is shutting down (UNAVAILABLE, retryable elsewhere).
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
    /// The server's storage failed (UNAVAILABLE).
    pub const STORAGE_FAILURE: &str = "STORAGE_FAILURE";
    /// A request id was used before for a different request (INVALID_ARGUMENT).
    pub const REQUEST_ID_REUSED: &str = "REQUEST_ID_REUSED";
    /// The namespace exists already (ALREADY_EXISTS).
    pub const NAMESPACE_EXISTS: &str = "NAMESPACE_EXISTS";
    /// The `default` namespace cannot be dropped (FAILED_PRECONDITION).
    pub const DEFAULT_NAMESPACE: &str = "DEFAULT_NAMESPACE";
    /// The replication protocol asked for is not available (FAILED_PRECONDITION).
    pub const PROTOCOL_UNAVAILABLE: &str = "PROTOCOL_UNAVAILABLE";
    /// The cluster has fewer replicas than the namespace asks for (FAILED_PRECONDITION).
    pub const NOT_ENOUGH_REPLICAS: &str = "NOT_ENOUGH_REPLICAS";
    /// The replica is not the primary and could not forward the request (UNAVAILABLE,
    /// retryable); the `ErrorInfo` metadata names the primary (`leader_id`,
    /// `leader_address`) when one is known. Nothing was written.
    pub const NOT_LEADER: &str = "NOT_LEADER";
    /// The primary could not confirm its leadership with a quorum (UNAVAILABLE, retryable
    /// elsewhere: it may be partitioned away). Only reads answer this.
    pub const NO_QUORUM: &str = "NO_QUORUM";
    /// The replica's known lag is over the read's staleness bound (UNAVAILABLE, retryable
    /// at another replica).
    pub const STALENESS_BOUND_EXCEEDED: &str = "STALENESS_BOUND_EXCEEDED";
    /// A write did not commit in time (DEADLINE_EXCEEDED): it may or may not take effect.
    pub const COMMIT_TIMEOUT: &str = "COMMIT_TIMEOUT";
    /// The replica's Raft group stopped (UNAVAILABLE, retryable elsewhere). A write that got
    /// this may have been proposed before the group stopped, so its outcome is unknown.
    pub const REPLICATION_STOPPED: &str = "REPLICATION_STOPPED";
    /// A membership change is refused, e.g. removing the last voter or a new replica that
    /// did not catch up in time (FAILED_PRECONDITION).
    pub const MEMBERSHIP_CHANGE_REFUSED: &str = "MEMBERSHIP_CHANGE_REFUSED";
    /// A replica id is 0 (INVALID_ARGUMENT).
    pub const BAD_REPLICA_ID: &str = "BAD_REPLICA_ID";
    /// A replica address is not `host:port` (INVALID_ARGUMENT).
    pub const BAD_ADDRESS: &str = "BAD_ADDRESS";
    /// A backup forwarded a write to the primary and the forward failed after sending
    /// (DEADLINE_EXCEEDED): the write may or may not take effect.
    pub const FORWARD_INTERRUPTED: &str = "FORWARD_INTERRUPTED";
    /// A backup could not reach the primary to forward to; nothing was written
    /// (UNAVAILABLE, retryable).
    pub const FORWARD_FAILED: &str = "FORWARD_FAILED";
    /// A transaction read a key (or scanned a range) that another write changed after its
    /// snapshot; the message names the key. Nothing was written (ABORTED: re-run it).
    pub const TRANSACTION_CONFLICT: &str = "TRANSACTION_CONFLICT";
    /// The transaction is not open at the primary: it expired, was aborted or committed, or
    /// began at a primary that has since changed (ABORTED: re-run it). Answering a commit
    /// resent with the same request id, it means the commit never applied.
    pub const TRANSACTION_UNKNOWN: &str = "TRANSACTION_UNKNOWN";
    /// The transaction stayed open longer than the server's maximum age (ABORTED).
    pub const TRANSACTION_EXPIRED: &str = "TRANSACTION_EXPIRED";
    /// The transaction's snapshot fell behind the history the server keeps (ABORTED).
    pub const SNAPSHOT_TOO_OLD: &str = "SNAPSHOT_TOO_OLD";
    /// A transaction is over a limit: 10000 keys and ranges read, 10000 writes, 4 MiB, or
    /// 128 compares or ops per branch of a one-shot transaction (INVALID_ARGUMENT).
    pub const TRANSACTION_TOO_LARGE: &str = "TRANSACTION_TOO_LARGE";
    /// The primary has as many transactions open as it allows; retry shortly
    /// (RESOURCE_EXHAUSTED).
    pub const TOO_MANY_TRANSACTIONS: &str = "TOO_MANY_TRANSACTIONS";
    /// Transactions need a primary-backup namespace (FAILED_PRECONDITION).
    pub const TRANSACTIONS_NEED_PRIMARY_BACKUP: &str = "TRANSACTIONS_NEED_PRIMARY_BACKUP";
    /// The replicas keep no history, so snapshot reads are impossible (FAILED_PRECONDITION).
    pub const NO_HISTORY_RETAINED: &str = "NO_HISTORY_RETAINED";
    /// A transaction was used in a namespace other than its own (INVALID_ARGUMENT).
    pub const TRANSACTION_NAMESPACE: &str = "TRANSACTION_NAMESPACE";
}

/// The `ErrorInfo.metadata` key of the primary's id in a `NOT_LEADER` error.
pub const LEADER_ID_KEY: &str = "leader_id";
/// The `ErrorInfo.metadata` key of the primary's address in a `NOT_LEADER` error.
pub const LEADER_ADDRESS_KEY: &str = "leader_address";

/// A gRPC status as the client received it, with its decoded rich details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorStatus {
    code: Code,
    message: String,
    reason: Option<String>,
    // Boxed strings (two words, not three) keep [`Error`] small.
    domain: Option<Box<str>>,
    field: Option<Box<str>>,
    retry_delay: Option<Duration>,
    connect_failed: bool,
    /// For `NOT_LEADER`: the primary, when known (boxed: it is rare, and [`Error`] stays small).
    leader: Option<Box<LeaderHint>>,
}

/// The primary a `NOT_LEADER` error names.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LeaderHint {
    id: Option<u64>,
    address: Option<String>,
}

impl ErrorStatus {
    /// Decodes a tonic status: its code, message and `google.rpc` details.
    pub fn from_tonic(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let info = details.error_info();
        let field = details
            .bad_request()
            .and_then(|b| b.field_violations.first())
            .map(|v| v.field.as_str().into());
        let connect_failed = is_connect_error(status);
        let mut message = status.message().to_string();
        if connect_failed {
            // tonic's message is only "tcp connect error"; the cause (e.g. "Connection
            // refused") is at the end of the source chain.
            if let Some(cause) = root_cause(status) {
                message = format!("{message}: {cause}");
            }
        }
        ErrorStatus {
            code: status.code(),
            message,
            reason: info.map(|i| i.reason.clone()).filter(|r| !r.is_empty()),
            domain: info
                .filter(|i| !i.domain.is_empty())
                .map(|i| i.domain.as_str().into()),
            field,
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
            connect_failed,
            leader: info.and_then(|i| {
                let id = i
                    .metadata
                    .get(LEADER_ID_KEY)
                    .and_then(|id| id.trim().parse().ok())
                    .filter(|id| *id != 0);
                let address = i
                    .metadata
                    .get(LEADER_ADDRESS_KEY)
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty());
                (id.is_some() || address.is_some()).then(|| Box::new(LeaderHint { id, address }))
            }),
        }
    }

    /// A status made up by the client itself (for example when its own deadline passes).
    pub fn local(code: Code, message: impl Into<String>) -> Self {
        ErrorStatus {
            code,
            message: message.into(),
            reason: None,
            domain: None,
            field: None,
            retry_delay: None,
            connect_failed: false,
            leader: None,
        }
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The status message (for INVALID_ARGUMENT the server writes `field: what is wrong`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The stable `ErrorInfo.reason`, when the status carried one.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The `ErrorInfo.domain` (`"dialkv"` for errors the server sent).
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The request field named by the first `BadRequest` field violation.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The server's `RetryInfo` delay: how long to wait before retrying.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_delay
    }

    /// For `NOT_LEADER`: the primary's id, when the replica knew it.
    pub fn leader_id(&self) -> Option<u64> {
        self.leader.as_ref().and_then(|l| l.id)
    }

    /// For `NOT_LEADER`: the primary's address (`host:port`), when the replica knew it.
    pub fn leader_address(&self) -> Option<&str> {
        self.leader.as_ref().and_then(|l| l.address.as_deref())
    }

    /// Whether the replica answered that it is not the primary and could not forward.
    pub fn is_not_leader(&self) -> bool {
        self.code == Code::Unavailable && self.reason() == Some(reason::NOT_LEADER)
    }

    /// Whether a dialkv server produced this status after reading the request (it carries
    /// a dialkv `ErrorInfo`). Such errors are definite: the server documents that nothing was
    /// written for a refused request.
    pub fn is_from_server(&self) -> bool {
        self.domain.as_deref() == Some(ERROR_DOMAIN)
    }

    /// Whether the client could not even connect, so the request was never sent.
    pub fn is_connect_failure(&self) -> bool {
        self.connect_failed
    }

    /// Whether a write that failed with this status may nevertheless have been applied:
    /// the deadline passed (at the client, or at the server as `COMMIT_TIMEOUT`) or the call
    /// was cancelled while the request may have been in flight, the transport failed after
    /// the request may have been sent, or the server's Raft group stopped
    /// (`REPLICATION_STOPPED`) after the write may have been proposed.
    pub fn write_may_have_applied(&self) -> bool {
        match self.code {
            Code::DeadlineExceeded | Code::Cancelled => true,
            Code::Unavailable if self.reason() == Some(reason::REPLICATION_STOPPED) => true,
            Code::Unavailable | Code::Unknown | Code::Internal => {
                !self.is_from_server() && !self.connect_failed
            }
            _ => false,
        }
    }
}

impl fmt::Display for ErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether a tonic status was made from a failure to connect (the request was never sent).
fn is_connect_error(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The message of the last error in a status's source chain, if it has one.
fn root_cause(status: &tonic::Status) -> Option<String> {
    let mut last = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        last = Some(err.to_string());
        source = err.source();
    }
    last
}

/// The upper-case gRPC name of a status code, as in `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failed client call, named by what the caller should do.
///
/// The `Display` form is `CODE message`, for example
/// `INVALID_ARGUMENT key: 5000 bytes is over the limit of 4096 bytes`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or over a limit (INVALID_ARGUMENT); fix it, do not retry it
    /// as is. Nothing was written. [`Error::field`] names the offending field.
    #[error("INVALID_ARGUMENT {0}")]
    InvalidArgument(ErrorStatus),
    /// What the request names does not exist (NOT_FOUND), e.g. `NAMESPACE_NOT_FOUND`. A
    /// missing key is not an error: `get` answers it with `None`.
    #[error("NOT_FOUND {0}")]
    NotFound(ErrorStatus),
    /// What the request would create exists already (ALREADY_EXISTS).
    #[error("ALREADY_EXISTS {0}")]
    AlreadyExists(ErrorStatus),
    /// The system is not in a state where the request can work (FAILED_PRECONDITION), e.g.
    /// dropping the `default` namespace; retrying it as is fails the same way.
    #[error("FAILED_PRECONDITION {0}")]
    FailedPrecondition(ErrorStatus),
    /// No replica could serve the request in time (UNAVAILABLE): the server is shutting
    /// down, overloaded, behind the session, or unreachable. Retryable; nothing was written
    /// (a write that might have been is [`Error::Indeterminate`] instead).
    #[error("UNAVAILABLE {0}")]
    Unavailable(ErrorStatus),
    /// A limit of the server is reached (RESOURCE_EXHAUSTED); retryable when the reason is
    /// `WRITE_QUEUE_FULL`. Nothing was written.
    #[error("RESOURCE_EXHAUSTED {0}")]
    ResourceExhausted(ErrorStatus),
    /// The operation was aborted by a conflict (ABORTED); the caller may retry it as a
    /// whole. The client does not retry aborted writes by itself.
    #[error("ABORTED {0}")]
    Aborted(ErrorStatus),
    /// An interactive transaction was aborted on every attempt the retry limit allowed
    /// ([`crate::transaction`]); `status` is the last abort, whose reason (e.g.
    /// `TRANSACTION_CONFLICT`, naming the key in its message) says why. Nothing was written
    /// by any attempt.
    #[error("ABORTED after {attempts} attempts: {reason} {status}", reason = .status.reason().unwrap_or("ABORTED"))]
    TransactionAborted {
        /// The last attempt's abort.
        status: ErrorStatus,
        /// How many times the transaction ran.
        attempts: u32,
    },
    /// A read's deadline passed before it was answered (DEADLINE_EXCEEDED).
    #[error("DEADLINE_EXCEEDED {0}")]
    DeadlineExceeded(ErrorStatus),
    /// A write's outcome is unknown: it may or may not have taken effect (its deadline passed
    /// or the connection failed after it may have been sent, and retries did not settle it).
    /// Read the key to find out; never assume the write failed.
    #[error("INDETERMINATE the write may or may not have taken effect: {code} {0}", code = code_name(.0.code()))]
    Indeterminate(ErrorStatus),
    /// Any other status (INTERNAL, UNKNOWN, UNIMPLEMENTED, PERMISSION_DENIED, ...).
    #[error("{code} {0}", code = code_name(.0.code()))]
    Other(ErrorStatus),
    /// An endpoint is not a valid `host:port` or `http://host:port` address.
    #[error("invalid endpoint {endpoint:?}: {message}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        message: String,
    },
    /// The client was given no endpoint at all.
    #[error("no endpoints given")]
    NoEndpoints,
    /// A session token's text or bytes are not a session token.
    #[error("invalid session token: {0}")]
    InvalidSessionToken(#[from] dialkv_consistency::session_token::TokenError),
    /// The server answered with a message the client cannot read (a field missing that the
    /// API promises, or an enum value unknown to this client).
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
}

impl Error {
    /// The error for a status, sorted by its code. A status of a write that may have been
    /// applied is not turned into [`Error::Indeterminate`] here: the retry loop decides that,
    /// as it knows the history of the call's attempts.
    pub fn from_status(status: ErrorStatus) -> Self {
        match status.code() {
            Code::InvalidArgument => Error::InvalidArgument(status),
            Code::NotFound => Error::NotFound(status),
            Code::AlreadyExists => Error::AlreadyExists(status),
            Code::FailedPrecondition => Error::FailedPrecondition(status),
            Code::Unavailable => Error::Unavailable(status),
            Code::ResourceExhausted => Error::ResourceExhausted(status),
            Code::Aborted => Error::Aborted(status),
            Code::DeadlineExceeded => Error::DeadlineExceeded(status),
            _ => Error::Other(status),
        }
    }

    /// The status behind the error, when it came from (or stands for) a gRPC status.
    pub fn status(&self) -> Option<&ErrorStatus> {
        match self {
            Error::InvalidArgument(s)
            | Error::NotFound(s)
            | Error::AlreadyExists(s)
            | Error::FailedPrecondition(s)
            | Error::Unavailable(s)
            | Error::ResourceExhausted(s)
            | Error::Aborted(s)
            | Error::DeadlineExceeded(s)
            | Error::Indeterminate(s)
            | Error::TransactionAborted { status: s, .. }
            | Error::Other(s) => Some(s),
            Error::InvalidEndpoint { .. }
            | Error::NoEndpoints
            | Error::InvalidSessionToken(_)
            | Error::UnexpectedResponse(_) => None,
        }
    }

    /// The gRPC code, for errors that are statuses.
    pub fn code(&self) -> Option<Code> {
        self.status().map(ErrorStatus::code)
    }

    /// The stable `ErrorInfo.reason` the server sent (e.g. `KEY_TOO_LARGE`), if any.
    pub fn reason(&self) -> Option<&str> {
        self.status().and_then(ErrorStatus::reason)
    }

    /// The status message, for errors that are statuses.
    pub fn message(&self) -> Option<&str> {
        self.status().map(ErrorStatus::message)
    }

    /// The request field the server named as wrong (`BadRequest`), if any.
    pub fn field(&self) -> Option<&str> {
        self.status().and_then(ErrorStatus::field)
    }

    /// How long the server asked the client to wait before retrying (`RetryInfo`), if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.status().and_then(ErrorStatus::retry_delay)
    }

    /// Whether retrying the same call later (or at another replica) may succeed: UNAVAILABLE,
    /// ABORTED, and RESOURCE_EXHAUSTED with reason `WRITE_QUEUE_FULL`. An indeterminate write
    /// is not retryable as such: its outcome must be settled first (a retry with a new request
    /// id could apply it twice).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::Aborted(_) | Error::TransactionAborted { .. } => true,
            Error::ResourceExhausted(s) => s.reason() == Some(reason::WRITE_QUEUE_FULL),
            _ => false,
        }
    }

    /// Whether this is a write whose outcome is unknown ([`Error::Indeterminate`]).
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, Error::Indeterminate(_))
    }

    /// Whether the namespace named in the request does not exist.
    pub fn is_namespace_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_)) && self.reason() == Some(reason::NAMESPACE_NOT_FOUND)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::from_status(ErrorStatus::from_tonic(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tonic_types::ErrorDetails;

    /// A status shaped as the server's `error::status` builds it.
    fn server_status(
        code: Code,
        reason: &str,
        message: &str,
        field: Option<&str>,
        retry: Option<Duration>,
    ) -> tonic::Status {
        let mut details = ErrorDetails::new();
        details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
        if let Some(field) = field {
            details.add_bad_request_violation(field, message);
        }
        if retry.is_some() {
            details.set_retry_info(retry);
        }
        tonic::Status::with_error_details(code, message, details)
    }

    #[test]
    fn invalid_argument_keeps_reason_field_and_message() {
        let status = server_status(
            Code::InvalidArgument,
            reason::KEY_TOO_LARGE,
            "key: 5000 bytes is over the limit of 4096 bytes",
            Some("key"),
            None,
        );
        let err = Error::from(status);
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert_eq!(err.reason(), Some("KEY_TOO_LARGE"));
        assert_eq!(err.field(), Some("key"));
        assert_eq!(err.code(), Some(Code::InvalidArgument));
        assert_eq!(
            err.to_string(),
            "INVALID_ARGUMENT key: 5000 bytes is over the limit of 4096 bytes"
        );
        assert!(!err.is_retryable());
        assert!(!err.is_indeterminate());
        assert!(err.status().is_some_and(ErrorStatus::is_from_server));
    }

    #[test]
    fn every_server_code_maps_to_its_variant() {
        /// A code and reason, a check of the variant, and whether it is retryable.
        type Case = (Code, &'static str, fn(&Error) -> bool, bool);
        let cases: &[Case] = &[
            (
                Code::NotFound,
                reason::NAMESPACE_NOT_FOUND,
                |e| matches!(e, Error::NotFound(_)),
                false,
            ),
            (
                Code::AlreadyExists,
                reason::NAMESPACE_EXISTS,
                |e| matches!(e, Error::AlreadyExists(_)),
                false,
            ),
            (
                Code::FailedPrecondition,
                reason::DEFAULT_NAMESPACE,
                |e| matches!(e, Error::FailedPrecondition(_)),
                false,
            ),
            (
                Code::FailedPrecondition,
                reason::PROTOCOL_UNAVAILABLE,
                |e| matches!(e, Error::FailedPrecondition(_)),
                false,
            ),
            (
                Code::FailedPrecondition,
                reason::NOT_ENOUGH_REPLICAS,
                |e| matches!(e, Error::FailedPrecondition(_)),
                false,
            ),
            (
                Code::Unavailable,
                reason::SESSION_BEHIND,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::Unavailable,
                reason::SHUTTING_DOWN,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::Unavailable,
                reason::STORAGE_FAILURE,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::Unavailable,
                reason::NOT_LEADER,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::Unavailable,
                reason::NO_QUORUM,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::Unavailable,
                reason::STALENESS_BOUND_EXCEEDED,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::Unavailable,
                reason::REPLICATION_STOPPED,
                |e| matches!(e, Error::Unavailable(_)),
                true,
            ),
            (
                Code::FailedPrecondition,
                reason::MEMBERSHIP_CHANGE_REFUSED,
                |e| matches!(e, Error::FailedPrecondition(_)),
                false,
            ),
            (
                Code::DeadlineExceeded,
                reason::COMMIT_TIMEOUT,
                |e| matches!(e, Error::DeadlineExceeded(_)),
                false,
            ),
            (
                Code::InvalidArgument,
                reason::BAD_REPLICA_ID,
                |e| matches!(e, Error::InvalidArgument(_)),
                false,
            ),
            (
                Code::ResourceExhausted,
                reason::WRITE_QUEUE_FULL,
                |e| matches!(e, Error::ResourceExhausted(_)),
                true,
            ),
            (
                Code::ResourceExhausted,
                "NAMESPACE_IDS_EXHAUSTED",
                |e| matches!(e, Error::ResourceExhausted(_)),
                false,
            ),
            (
                Code::Aborted,
                "CONFLICT",
                |e| matches!(e, Error::Aborted(_)),
                true,
            ),
            (
                Code::Internal,
                "BUG",
                |e| matches!(e, Error::Other(_)),
                false,
            ),
        ];
        for (code, why, is_variant, retryable) in cases {
            let err = Error::from(server_status(*code, why, "msg", None, None));
            assert!(is_variant(&err), "{code:?} {why}: {err:?}");
            assert_eq!(err.reason(), Some(*why));
            assert_eq!(err.is_retryable(), *retryable, "{code:?} {why}");
            assert!(!err.is_indeterminate());
        }
    }

    #[test]
    fn not_leader_carries_the_primary() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            reason::NOT_LEADER,
            ERROR_DOMAIN,
            HashMap::from([
                (LEADER_ID_KEY.to_string(), "3".to_string()),
                (LEADER_ADDRESS_KEY.to_string(), "10.0.0.3:7401".to_string()),
            ]),
        );
        let status = ErrorStatus::from_tonic(&tonic::Status::with_error_details(
            Code::Unavailable,
            "replica 1 is not the primary; the primary is replica 3 at 10.0.0.3:7401",
            details,
        ));
        assert!(status.is_not_leader());
        assert_eq!(status.leader_id(), Some(3));
        assert_eq!(status.leader_address(), Some("10.0.0.3:7401"));
        assert!(!status.write_may_have_applied());
        // Without metadata (no primary known) there is no hint; other reasons are not it.
        let bare = ErrorStatus::from_tonic(&server_status(
            Code::Unavailable,
            reason::NOT_LEADER,
            "replica 1 is not the primary",
            None,
            Some(Duration::from_millis(50)),
        ));
        assert!(bare.is_not_leader());
        assert_eq!((bare.leader_id(), bare.leader_address()), (None, None));
        assert_eq!(bare.retry_delay(), Some(Duration::from_millis(50)));
        let behind = ErrorStatus::from_tonic(&server_status(
            Code::Unavailable,
            reason::SESSION_BEHIND,
            "behind",
            None,
            None,
        ));
        assert!(!behind.is_not_leader());
    }

    #[test]
    fn retry_info_delay_is_decoded() {
        let status = server_status(
            Code::ResourceExhausted,
            reason::WRITE_QUEUE_FULL,
            "the write queue is full (64 writes waiting); retry shortly",
            None,
            Some(Duration::from_millis(50)),
        );
        let err = Error::from(status);
        assert_eq!(err.retry_delay(), Some(Duration::from_millis(50)));
        assert_eq!(
            err.to_string(),
            "RESOURCE_EXHAUSTED the write queue is full (64 writes waiting); retry shortly"
        );
    }

    #[test]
    fn plain_statuses_have_no_details() {
        let err = Error::from(tonic::Status::unavailable("tcp connect error"));
        assert!(matches!(err, Error::Unavailable(_)));
        assert_eq!(err.reason(), None);
        assert_eq!(err.field(), None);
        assert!(err.is_retryable());
        let s = err.status().expect("a status");
        assert!(!s.is_from_server());
        // Without a ConnectError in its source chain, the request may have been sent.
        assert!(s.write_may_have_applied());
    }

    #[test]
    fn which_failures_leave_a_write_unknown() {
        let server_unavailable = ErrorStatus::from_tonic(&server_status(
            Code::Unavailable,
            reason::SHUTTING_DOWN,
            "the server is shutting down",
            None,
            Some(Duration::from_millis(100)),
        ));
        assert!(!server_unavailable.write_may_have_applied());
        assert!(ErrorStatus::local(Code::DeadlineExceeded, "late").write_may_have_applied());
        assert!(ErrorStatus::local(Code::Cancelled, "gone").write_may_have_applied());
        assert!(ErrorStatus::local(Code::Unknown, "h2 reset").write_may_have_applied());
        assert!(!ErrorStatus::local(Code::InvalidArgument, "bad").write_may_have_applied());
        assert!(!ErrorStatus::local(Code::Unimplemented, "no").write_may_have_applied());
    }

    #[test]
    fn indeterminate_names_the_ambiguity() {
        let err = Error::Indeterminate(ErrorStatus::local(
            Code::DeadlineExceeded,
            "no reply within 5s",
        ));
        assert!(err.is_indeterminate());
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "INDETERMINATE the write may or may not have taken effect: DEADLINE_EXCEEDED no reply within 5s"
        );
    }
}
