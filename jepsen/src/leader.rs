//! Who leads: every live node is asked for its own state (`dialkv.v1.Cluster/GetNodeStatus`)
//! with a short deadline, and the answers are combined.
//!
//! The rule ([`choose`]): a node that says its role is `LEADER` leads; when several say so
//! (a deposed primary that has not noticed yet, next to the new one), the one with the highest
//! term wins. When no node says `LEADER` (an election is under way, or the leader is paused or
//! did not answer in time), the most common non-zero `leader_id` among the answers is taken
//! (ties go to the id reported with the highest term, then the lowest id). When nobody knows,
//! there is no leader.
//!
//! The nemesis uses this to aim its leader-targeted faults (`kill leader`, `pause leader`,
//! `partition-leader`) at the node the cluster itself calls the primary, instead of guessing
//! from which replica last answered a request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use dialkv_proto::v1::cluster_client::ClusterClient;
use dialkv_proto::v1::{NodeStatus, NodeStatusRequest, Role};
use tonic::transport::Endpoint;

use crate::cluster::NodeId;

/// How long one node may take to answer its status.
pub const STATUS_DEADLINE: Duration = Duration::from_millis(400);

/// One node's answer, reduced to what the choice needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusAnswer {
    /// The node asked.
    pub node: NodeId,
    /// Whether it says it is the leader.
    pub leader: bool,
    /// Its Raft term.
    pub term: u64,
    /// The leader it follows (0: none known).
    pub leader_id: u64,
}

impl StatusAnswer {
    /// Reduces a `NodeStatus` from node `node`.
    pub fn from_status(node: NodeId, s: &NodeStatus) -> Self {
        StatusAnswer {
            node,
            leader: s.role == Role::Leader as i32,
            term: s.term,
            leader_id: s.leader_id,
        }
    }
}

/// The leader found, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderGuess {
    /// The leader, when one was found.
    pub id: Option<NodeId>,
    /// How it was found (for the nemesis log).
    pub how: String,
}

/// Chooses the leader from the answers; see the module docs.
pub fn choose(answers: &[StatusAnswer]) -> LeaderGuess {
    if let Some(a) = answers
        .iter()
        .filter(|a| a.leader)
        .max_by_key(|a| (a.term, std::cmp::Reverse(a.node)))
    {
        let claims = answers.iter().filter(|a| a.leader).count();
        return LeaderGuess {
            id: Some(a.node),
            how: if claims == 1 {
                format!("n{} says LEADER (term {})", a.node, a.term)
            } else {
                format!(
                    "{claims} nodes say LEADER; n{} has the highest term ({})",
                    a.node, a.term
                )
            },
        };
    }
    // leader_id -> (votes, highest term reporting it)
    let mut tally: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
    for a in answers.iter().filter(|a| a.leader_id != 0) {
        let e = tally.entry(a.leader_id).or_default();
        e.0 += 1;
        e.1 = e.1.max(a.term);
    }
    match tally
        .iter()
        .max_by_key(|(id, (votes, term))| (*votes, *term, std::cmp::Reverse(**id)))
    {
        Some((id, (votes, _))) => LeaderGuess {
            id: Some(*id),
            how: format!(
                "no node says LEADER; {votes} of {} answers follow n{id}",
                answers.len()
            ),
        },
        None => LeaderGuess {
            id: None,
            how: format!("{} node(s) answered; none knows a leader", answers.len()),
        },
    }
}

/// Asks one node for its status within [`STATUS_DEADLINE`].
pub async fn node_status(addr: SocketAddr) -> Option<NodeStatus> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(STATUS_DEADLINE)
        .timeout(STATUS_DEADLINE);
    let ask = async {
        let channel = endpoint.connect().await.ok()?;
        let mut client = ClusterClient::new(channel);
        let mut request = tonic::Request::new(NodeStatusRequest {});
        request.set_timeout(STATUS_DEADLINE);
        client
            .get_node_status(request)
            .await
            .ok()
            .map(tonic::Response::into_inner)
    };
    tokio::time::timeout(STATUS_DEADLINE * 2, ask)
        .await
        .ok()
        .flatten()
}

/// Asks every node in `nodes` at once and chooses the leader from the answers.
pub async fn detect(nodes: &[(NodeId, SocketAddr)]) -> LeaderGuess {
    let mut asks = tokio::task::JoinSet::new();
    for &(id, addr) in nodes {
        asks.spawn(async move { (id, node_status(addr).await) });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok((id, Some(status))) = joined {
            answers.push(StatusAnswer::from_status(id, &status));
        }
    }
    answers.sort_by_key(|a| a.node);
    let mut guess = choose(&answers);
    if answers.len() < nodes.len() {
        guess.how.push_str(&format!(
            " ({} of {} live nodes did not answer)",
            nodes.len() - answers.len(),
            nodes.len()
        ));
    }
    guess
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(node: NodeId, leader: bool, term: u64, leader_id: u64) -> StatusAnswer {
        StatusAnswer {
            node,
            leader,
            term,
            leader_id,
        }
    }

    #[test]
    fn the_node_that_says_leader_leads() {
        let g = choose(&[a(1, false, 3, 2), a(2, true, 3, 2), a(3, false, 3, 2)]);
        assert_eq!(g.id, Some(2), "{}", g.how);
    }

    #[test]
    fn of_two_leaders_the_higher_term_wins() {
        // n1 was cut off and still thinks it leads in term 2; n3 leads in term 3.
        let g = choose(&[a(1, true, 2, 1), a(2, false, 3, 3), a(3, true, 3, 3)]);
        assert_eq!(g.id, Some(3), "{}", g.how);
    }

    #[test]
    fn without_a_leader_answer_the_most_common_leader_id_wins() {
        // The leader (n2) is paused; the others still follow it.
        let g = choose(&[a(1, false, 4, 2), a(3, false, 4, 2)]);
        assert_eq!(g.id, Some(2), "{}", g.how);
        let g = choose(&[a(1, false, 4, 2), a(2, false, 5, 3), a(3, false, 5, 3)]);
        assert_eq!(g.id, Some(3), "{}", g.how);
        // A tie goes to the id reported with the higher term.
        let g = choose(&[a(1, false, 4, 2), a(2, false, 5, 3)]);
        assert_eq!(g.id, Some(3), "{}", g.how);
    }

    #[test]
    fn nobody_knows_means_no_leader() {
        assert_eq!(choose(&[a(1, false, 1, 0), a(2, false, 1, 0)]).id, None);
        assert_eq!(choose(&[]).id, None);
    }
}
