//! Request and reply, one at a time, over a long-lived bidirectional gRPC stream between two
//! replicas.
//!
//! The replication protocols each keep one sender per peer that waits for a reply before it
//! sends again (openraft's replication stream to a backup, the quorum protocol's stream of an
//! origin's updates to a peer). As unary calls, every request was three HTTP/2 writes —
//! headers, data, and an empty end-of-stream frame — and tonic's handler started only at the
//! last (a `strace` of a lone put showed 0.2–0.4 ms between the first and the last on these
//! machines). On a stream already open a request is one DATA frame and one `writev`, and the
//! receiver starts on it when it arrives.
//!
//! The sender's [`Link`] takes the stream out for each exchange and puts it back only after
//! the reply is read: a request that fails, times out or whose caller gives up (its future is
//! dropped) takes the stream with it, so a late reply can never be read as the answer to a
//! later request; the next request opens a new stream. A peer that answers `UNIMPLEMENTED` (a
//! server from before the stream) marks the link [`Link::Unary`], and the sender goes back to
//! unary calls. The receiver's side is [`serve`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The replies of a served stream, as tonic's generated services want them.
pub type Replies<M> = Pin<Box<dyn Stream<Item = Result<M, tonic::Status>> + Send>>;

/// How a sender reaches one peer.
#[derive(Debug, Default)]
pub enum Link<M> {
    /// No stream is open: the next request opens one.
    #[default]
    Closed,
    /// An open stream: requests go into `requests`, replies come back in order on `replies`.
    Open {
        /// The request side of the stream.
        requests: mpsc::Sender<M>,
        /// The reply side.
        replies: Box<tonic::Streaming<M>>,
    },
    /// The peer does not serve the stream: unary calls.
    Unary,
}

impl<M: Send + 'static> Link<M> {
    /// Whether requests to this peer go as unary calls.
    pub fn is_unary(&self) -> bool {
        matches!(self, Link::Unary)
    }

    /// Sends `message` on the stream and waits, at most `timeout`, for its reply. When no
    /// stream is open, `open` opens one: a call of the streaming method with the requests it
    /// is given (the first of them already queued, since the call returns only once the peer
    /// has answered the stream's headers). Any failure leaves the link closed, or
    /// [`Link::Unary`] when the peer answered `UNIMPLEMENTED`.
    pub async fn exchange<F, Fut>(
        &mut self,
        message: M,
        timeout: Duration,
        open: F,
    ) -> Result<M, tonic::Status>
    where
        F: FnOnce(ReceiverStream<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>>,
    {
        let taken = std::mem::take(self);
        let exchange = async {
            let (requests, mut replies) = match taken {
                Link::Open { requests, replies } => {
                    requests
                        .send(message)
                        .await
                        .map_err(|_| tonic::Status::unavailable("the peer stream closed"))?;
                    (requests, replies)
                }
                Link::Closed | Link::Unary => {
                    let (requests, queue) = mpsc::channel(1);
                    let _ = requests.send(message).await;
                    let replies = open(ReceiverStream::new(queue)).await?.into_inner();
                    (requests, Box::new(replies))
                }
            };
            let reply = replies
                .message()
                .await?
                .ok_or_else(|| tonic::Status::unavailable("the peer closed the stream"))?;
            Ok::<_, tonic::Status>((reply, Link::Open { requests, replies }))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((reply, open))) => {
                *self = open;
                Ok(reply)
            }
            Ok(Err(status)) => {
                if status.code() == tonic::Code::Unimplemented {
                    *self = Link::Unary;
                }
                Err(status)
            }
            // The reply still on its way, if any, went with the dropped stream.
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no reply within {timeout:?}"
            ))),
        }
    }
}

/// Serves a stream of requests: `handle` answers each, one at a time and in order (the next
/// is read once the last one's reply is taken). A failed request ends the stream with its
/// error, as a unary call would fail; the sender opens a new stream for the next.
pub fn serve<M, F, Fut>(requests: tonic::Streaming<M>, handle: F) -> Replies<M>
where
    M: Send + 'static,
    F: Fn(M) -> Fut + Send + 'static,
    Fut: Future<Output = Result<M, tonic::Status>> + Send,
{
    let replies = futures::stream::unfold(
        (requests, handle, false),
        |(mut requests, handle, failed)| async move {
            if failed {
                return None;
            }
            let message = requests.message().await.ok().flatten()?;
            let reply = handle(message).await;
            let failed = reply.is_err();
            Some((reply, (requests, handle, failed)))
        },
    );
    Box::pin(replies)
}
