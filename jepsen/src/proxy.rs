//! Network partitions made at the network level: a harness-run TCP proxy on every directed
//! node-to-node link.
//!
//! Node `i` reaches node `j` through the proxy of link `i → j` (its `--peers` entry for `j`
//! is that proxy's address), so each direction of each pair can be cut on its own. A link is
//! in one of three [`LinkMode`]s:
//!
//! - `Pass`: bytes are forwarded both ways;
//! - `Drop`: every open connection is closed and new ones are closed as soon as they are
//!   accepted (the peer sees resets and refusals at once, as with an iptables `REJECT`);
//! - `Blackhole`: connections are accepted but nothing is forwarded: bytes are read and
//!   discarded in both directions (as with an iptables `DROP`: the sender learns nothing until
//!   its own timeouts fire).
//!
//! Healing a link (back to `Pass`) closes every connection that lost bytes to a blackhole,
//! since its byte stream is no longer whole; new connections pass. This mirrors what the
//! design notes learned from turmoil: a healed link needs a new channel.
//!
//! Root is not needed, and all traffic stays on loopback. Network namespaces with iptables
//! would also cut client traffic; this proxy cuts only node-to-node links (clients talk to
//! nodes directly), which is the partition model of Jepsen's own tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::cluster::NodeId;

/// What a link does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Forward bytes both ways.
    Pass,
    /// Close connections at once (refuse).
    Drop,
    /// Accept, read and discard: nothing gets through, nothing is refused.
    Blackhole,
}

/// A TCP proxy in front of one address whose behaviour can be switched at run time.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<LinkMode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port that forwards to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a proxy port")?;
        let addr = listener.local_addr()?;
        let (mode, rx) = watch::channel(LinkMode::Pass);
        let task = tokio::spawn(accept_loop(listener, target, rx));
        Ok(Proxy { addr, mode, task })
    }

    /// Returns the address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the current mode.
    pub fn mode(&self) -> LinkMode {
        *self.mode.borrow()
    }

    /// Switches the mode; open connections react at once.
    pub fn set_mode(&self, mode: LinkMode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<LinkMode>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_conn(stream, target, mode.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one accepted connection until either side closes it or the mode says to close it.
async fn serve_conn(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<LinkMode>) {
    let initial = *mode.borrow_and_update();
    if initial == LinkMode::Drop {
        return;
    }
    let tainted = Arc::new(AtomicBool::new(initial == LinkMode::Blackhole));
    let (client_r, client_w) = client.into_split();
    let upstream = if initial == LinkMode::Pass {
        match TcpStream::connect(target).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                Some(s.into_split())
            }
            Err(_) => return,
        }
    } else {
        None
    };
    let watcher = {
        let tainted = tainted.clone();
        async move {
            loop {
                if mode.changed().await.is_err() {
                    return;
                }
                match *mode.borrow_and_update() {
                    LinkMode::Drop => return,
                    LinkMode::Blackhole => tainted.store(true, Ordering::SeqCst),
                    LinkMode::Pass => {
                        if tainted.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                }
            }
        }
    };
    match upstream {
        Some((up_r, up_w)) => {
            tokio::select! {
                _ = pump(client_r, Some(up_w), tainted.clone()) => {}
                _ = pump(up_r, Some(client_w), tainted.clone()) => {}
                _ = watcher => {}
            }
        }
        None => {
            // Blackholed from the start: swallow the client's bytes until the link heals (the
            // connection is then closed) or is dropped.
            tokio::select! {
                _ = pump(client_r, None, tainted.clone()) => {}
                _ = watcher => {}
            }
            drop(client_w);
        }
    }
}

/// Copies bytes from `from` to `to` while the link is whole; once it has been blackholed,
/// reads and discards.
async fn pump(mut from: OwnedReadHalf, mut to: Option<OwnedWriteHalf>, tainted: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tainted.load(Ordering::SeqCst) {
            continue;
        }
        if let Some(w) = to.as_mut() {
            if w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

/// The proxies of every directed link of a cluster.
#[derive(Debug)]
pub struct Network {
    links: BTreeMap<(NodeId, NodeId), Proxy>,
}

impl Network {
    /// Starts a proxy for every ordered pair `(i, j)`, `i != j`, forwarding to `j`'s address.
    pub async fn start(nodes: &BTreeMap<NodeId, SocketAddr>) -> anyhow::Result<Network> {
        let mut links = BTreeMap::new();
        for &i in nodes.keys() {
            for (&j, &addr) in nodes {
                if i != j {
                    links.insert((i, j), Proxy::start(addr).await?);
                }
            }
        }
        Ok(Network { links })
    }

    /// Returns the address node `from` uses to reach node `to`.
    pub fn link_addr(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(Proxy::addr)
    }

    /// Cuts the given directed links with `mode`, and heals every other link.
    pub fn partition(&self, cut: &BTreeSet<(NodeId, NodeId)>, mode: LinkMode) {
        for (link, proxy) in &self.links {
            proxy.set_mode(if cut.contains(link) {
                mode
            } else {
                LinkMode::Pass
            });
        }
    }

    /// Heals every link.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            proxy.set_mode(LinkMode::Pass);
        }
    }

    /// Returns the links that are not passing traffic.
    pub fn cut_links(&self) -> Vec<((NodeId, NodeId), LinkMode)> {
        self.links
            .iter()
            .filter(|(_, p)| p.mode() != LinkMode::Pass)
            .map(|(l, p)| (*l, p.mode()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An echo server on a free port.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `msg` and waits up to 300 ms for the echo: `Some(bytes)`, or `None` on timeout,
    /// or an empty vector when the connection was closed.
    async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        if s.write_all(msg).await.is_err() {
            return Some(Vec::new());
        }
        let mut buf = vec![0u8; msg.len()];
        match tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf),
            Ok(Err(_)) => Some(Vec::new()),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn passes_blackholes_and_heals() {
        let target = echo_server().await;
        let proxy = Proxy::start(target).await.expect("proxy");
        let mut a = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(round_trip(&mut a, b"hello").await, Some(b"hello".to_vec()));

        proxy.set_mode(LinkMode::Blackhole);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            round_trip(&mut a, b"lost").await,
            None,
            "blackholed: no echo"
        );
        let mut b = TcpStream::connect(proxy.addr())
            .await
            .expect("a blackhole accepts");
        assert_eq!(round_trip(&mut b, b"lost").await, None);

        proxy.set_mode(LinkMode::Pass);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            round_trip(&mut a, b"x").await,
            Some(Vec::new()),
            "a connection that lost bytes is closed on heal"
        );
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(round_trip(&mut c, b"again").await, Some(b"again".to_vec()));
    }

    #[tokio::test]
    async fn drop_closes_and_refuses_until_healed() {
        let target = echo_server().await;
        let proxy = Proxy::start(target).await.expect("proxy");
        let mut a = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(round_trip(&mut a, b"hi").await, Some(b"hi".to_vec()));

        proxy.set_mode(LinkMode::Drop);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(round_trip(&mut a, b"x").await, Some(Vec::new()), "closed");
        let mut b = TcpStream::connect(proxy.addr()).await.expect("accepted");
        assert_eq!(round_trip(&mut b, b"x").await, Some(Vec::new()), "refused");

        proxy.set_mode(LinkMode::Pass);
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(round_trip(&mut c, b"back").await, Some(b"back".to_vec()));
    }

    #[tokio::test]
    async fn network_cuts_only_the_given_links() {
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            nodes.insert(id, echo_server().await);
        }
        let net = Network::start(&nodes).await.expect("network");
        let cut: BTreeSet<_> = [(1, 2), (2, 1)].into_iter().collect();
        net.partition(&cut, LinkMode::Drop);
        let mut one_two = TcpStream::connect(net.link_addr(1, 2).expect("link"))
            .await
            .expect("accepted");
        assert_eq!(round_trip(&mut one_two, b"x").await, Some(Vec::new()));
        let mut one_three = TcpStream::connect(net.link_addr(1, 3).expect("link"))
            .await
            .expect("connect");
        assert_eq!(round_trip(&mut one_three, b"y").await, Some(b"y".to_vec()));
        assert_eq!(net.cut_links().len(), 2);
        net.heal();
        assert!(net.cut_links().is_empty());
    }
}
