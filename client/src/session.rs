//! Sessions: the client-centric guarantees of Terry et al. ("Session Guarantees for Weakly
//! Consistent Replicated Data", PDIS 1994) over a stateless server.
//!
//! A [`Session`] holds the merged [`SessionToken`] of everything it has done. Every call made
//! through it sends that token with the guarantees asked for, and merges the token of each
//! response back in (tokens form a join-semilattice, so concurrent calls may merge in any
//! order). A replica behind the token answers UNAVAILABLE / `SESSION_BEHIND`, and the client
//! retries at the next endpoint.
//!
//! The token's text form ([`Session::token_string`], URL-safe base64) can be stored, for
//! example in a cookie, and the session continued in another process with
//! [`Session::resume`].

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dialkv_consistency::session_token::SessionToken;
use futures::Stream;

use crate::client::{scan_stream, Client};
use crate::error::Error;
use crate::options::CallOptions;
use crate::proto;
use crate::types::{
    CasAction, CasOutput, Condition, DeleteOutput, Entry, GetOutput, PutOutput, ScanPage, ScanRange,
};

/// Which session guarantees to enforce; each on or off. The default is all on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionGuarantees {
    /// A read sees every write the session made before it.
    pub read_your_writes: bool,
    /// A read never sees an older state than an earlier read of the session saw.
    pub monotonic_reads: bool,
    /// The session's writes take effect in the order the session made them.
    pub monotonic_writes: bool,
    /// A write is ordered after every write the session had read before making it.
    pub writes_follow_reads: bool,
}

impl SessionGuarantees {
    /// All four guarantees.
    pub fn all() -> Self {
        SessionGuarantees {
            read_your_writes: true,
            monotonic_reads: true,
            monotonic_writes: true,
            writes_follow_reads: true,
        }
    }

    /// No guarantee (the token is still carried and merged).
    pub fn none() -> Self {
        SessionGuarantees {
            read_your_writes: false,
            monotonic_reads: false,
            monotonic_writes: false,
            writes_follow_reads: false,
        }
    }

    /// The wire message.
    pub fn to_proto(self) -> proto::SessionGuarantees {
        proto::SessionGuarantees {
            read_your_writes: self.read_your_writes,
            monotonic_reads: self.monotonic_reads,
            monotonic_writes: self.monotonic_writes,
            writes_follow_reads: self.writes_follow_reads,
        }
    }
}

impl Default for SessionGuarantees {
    fn default() -> Self {
        Self::all()
    }
}

/// The shared state of a session: its guarantees and merged token.
#[derive(Debug)]
pub(crate) struct SessionState {
    guarantees: SessionGuarantees,
    /// The join of every token the session has seen. A std mutex: it is held only to copy or
    /// merge, never across an await.
    token: Mutex<SessionToken>,
}

impl SessionState {
    fn token(&self) -> SessionToken {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The session as sent with a request: the token as of now, and the guarantees.
    pub(crate) fn to_proto(&self) -> proto::Session {
        proto::Session {
            token: Some(proto::SessionToken {
                token: Bytes::from(self.token().encode()),
            }),
            guarantees: Some(self.guarantees.to_proto()),
        }
    }

    /// Merges a response's token into the session's.
    pub(crate) fn merge(&self, other: &SessionToken) {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .merge(other);
    }
}

/// A session: calls through it see the guarantees asked for. Clones share the same session.
#[derive(Clone, Debug)]
pub struct Session {
    client: Client,
    state: Arc<SessionState>,
}

impl Session {
    pub(crate) fn new(client: Client, guarantees: SessionGuarantees, token: SessionToken) -> Self {
        Session {
            client,
            state: Arc::new(SessionState {
                guarantees,
                token: Mutex::new(token),
            }),
        }
    }

    /// Continues a session saved as text (see [`Session::token_string`]) with all four
    /// guarantees; an empty string starts a new session.
    pub fn resume(client: &Client, token_text: &str) -> Result<Session, Error> {
        Self::resume_with(client, token_text, SessionGuarantees::all())
    }

    /// [`Session::resume`] with chosen guarantees.
    pub fn resume_with(
        client: &Client,
        token_text: &str,
        guarantees: SessionGuarantees,
    ) -> Result<Session, Error> {
        let token: SessionToken = token_text.parse()?;
        Ok(Session::new(client.clone(), guarantees, token))
    }

    /// The session's token so far.
    pub fn token(&self) -> SessionToken {
        self.state.token()
    }

    /// The session's token in its text form (URL-safe base64), fit to store and resume.
    pub fn token_string(&self) -> String {
        self.token().to_string()
    }

    /// The guarantees this session enforces.
    pub fn guarantees(&self) -> SessionGuarantees {
        self.state.guarantees
    }

    /// The client the session calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads `key` in the session (default options).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetOutput, Error> {
        self.get_with(key, &CallOptions::default()).await
    }

    /// Reads `key` in the session with `opts`.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        opts: &CallOptions,
    ) -> Result<GetOutput, Error> {
        self.client
            .get_in(
                Bytes::copy_from_slice(key.as_ref()),
                opts,
                Some(&self.state),
            )
            .await
    }

    /// Writes `key` = `value` in the session (default options).
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<PutOutput, Error> {
        self.put_with(key, value, &CallOptions::default()).await
    }

    /// Writes `key` = `value` in the session with `opts`.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        opts: &CallOptions,
    ) -> Result<PutOutput, Error> {
        self.client
            .put_in(
                Bytes::copy_from_slice(key.as_ref()),
                value.into(),
                opts,
                Some(&self.state),
            )
            .await
    }

    /// Deletes `key` in the session (default options).
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteOutput, Error> {
        self.delete_with(key, &CallOptions::default()).await
    }

    /// Deletes `key` in the session with `opts`.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        opts: &CallOptions,
    ) -> Result<DeleteOutput, Error> {
        self.client
            .delete_in(
                Bytes::copy_from_slice(key.as_ref()),
                opts,
                Some(&self.state),
            )
            .await
    }

    /// Compare-and-set in the session (default options).
    pub async fn compare_and_set(
        &self,
        key: impl AsRef<[u8]>,
        condition: Condition,
        action: CasAction,
    ) -> Result<CasOutput, Error> {
        self.compare_and_set_with(key, condition, action, &CallOptions::default())
            .await
    }

    /// Compare-and-set in the session with `opts`.
    pub async fn compare_and_set_with(
        &self,
        key: impl AsRef<[u8]>,
        condition: Condition,
        action: CasAction,
        opts: &CallOptions,
    ) -> Result<CasOutput, Error> {
        self.client
            .cas_in(
                Bytes::copy_from_slice(key.as_ref()),
                condition,
                action,
                opts,
                Some(&self.state),
            )
            .await
    }

    /// One page of a scan in the session (see [`Client::scan`]).
    pub async fn scan(
        &self,
        range: &ScanRange,
        continuation: Option<Bytes>,
        opts: &CallOptions,
    ) -> Result<ScanPage, Error> {
        self.client
            .scan_in(range, continuation, opts, Some(&self.state))
            .await
    }

    /// Every key of `range`, in the session.
    pub async fn scan_all(
        &self,
        range: &ScanRange,
        opts: &CallOptions,
    ) -> Result<Vec<Entry>, Error> {
        use futures::TryStreamExt;
        self.scan_stream(range.clone(), opts.clone())
            .try_collect()
            .await
    }

    /// Streams every key of `range`, in the session.
    pub fn scan_stream(
        &self,
        range: ScanRange,
        opts: CallOptions,
    ) -> impl Stream<Item = Result<Entry, Error>> + Send + 'static {
        scan_stream(self.client.clone(), range, opts, Some(self.state.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_merge_and_resume_from_text() {
        let client = Client::connect(["127.0.0.1:1"]).expect("valid");
        let session = client.session(SessionGuarantees::all());
        assert!(session.token().is_empty());
        let mut seen = SessionToken::new();
        seen.observe_write("default", 1, 7);
        session.state.merge(&seen);
        let mut older = SessionToken::new();
        older.observe_read("default", 1, 3);
        session.state.merge(&older);
        assert_eq!(session.token(), seen);
        let text = session.token_string();
        let resumed = Session::resume(&client, &text).expect("a token");
        assert_eq!(resumed.token(), seen);
        let wire = resumed.state.to_proto();
        assert_eq!(wire.token.expect("token").token, Bytes::from(seen.encode()));
        assert_eq!(wire.guarantees, Some(SessionGuarantees::all().to_proto()));
        assert!(matches!(
            Session::resume(&client, "!!"),
            Err(Error::InvalidSessionToken(_))
        ));
        assert!(Session::resume(&client, "")
            .expect("empty")
            .token()
            .is_empty());
    }
}
