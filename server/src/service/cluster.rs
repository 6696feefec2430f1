//! The `dialkv.v1.Cluster` service: status of every replica, and membership changes.

use std::sync::Arc;
use std::time::Duration;

use dialkv_proto::v1::{self, cluster_client::ClusterClient, cluster_server::Cluster};
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::{forward_error, forward_request, forward_target, forwarded, Node, FORWARD_TIMEOUT};
use crate::error::ServiceError;

/// How long a replica's own status may take to arrive before it is reported unreachable.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new replica may take to catch up before it joins the voters.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// The Cluster service of one replica.
#[derive(Clone, Debug)]
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// This replica's own status.
    fn local_status(&self) -> v1::NodeStatus {
        let n = &self.node;
        let m = n.replica.metrics();
        let (voters, _) = n.replica.members();
        let role = match m.state {
            ServerState::Leader => v1::Role::Leader,
            ServerState::Follower => v1::Role::Follower,
            ServerState::Candidate => v1::Role::Candidate,
            ServerState::Learner => v1::Role::Learner,
            ServerState::Shutdown => v1::Role::Unreachable,
        };
        let (lag_versions, lag) = n.replica.lag();
        let applied = n.store.applied_index();
        let address = n
            .replica
            .member_addresses()
            .into_iter()
            .find(|(id, _)| *id == n.id)
            .and_then(|(_, a)| a)
            .unwrap_or_default();
        v1::NodeStatus {
            id: n.id,
            address,
            role: role as i32,
            reachable: true,
            voter: voters.contains(&n.id),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: applied + lag_versions,
            applied_index: applied,
            lag_versions,
            lag_ms: lag.map_or(u64::MAX, |d| d.as_millis() as u64),
            leader_id: m.current_leader.unwrap_or(0),
        }
    }

    async fn status(&self) -> Result<v1::ClusterStatusResponse, ServiceError> {
        let n = &self.node;
        let (voters, _) = n.replica.members();
        // Every member is asked at once, so unreachable ones cost one timeout in all.
        let asks = n
            .replica
            .member_addresses()
            .into_iter()
            .map(|(id, address)| {
                let voter = voters.contains(&id);
                async move {
                    if id == n.id {
                        return self.local_status();
                    }
                    let unreachable = v1::NodeStatus {
                        id,
                        address: address.clone().unwrap_or_default(),
                        role: v1::Role::Unreachable as i32,
                        reachable: false,
                        voter,
                        ..Default::default()
                    };
                    let Some(addr) = address else {
                        return unreachable;
                    };
                    let mut request = Request::new(v1::NodeStatusRequest {});
                    request.set_timeout(STATUS_TIMEOUT);
                    let mut client = ClusterClient::new(n.channel_to(&addr));
                    match tokio::time::timeout(STATUS_TIMEOUT, client.get_node_status(request))
                        .await
                    {
                        Ok(Ok(reply)) => {
                            let mut s = reply.into_inner();
                            s.address = addr;
                            s.voter = voter;
                            s
                        }
                        _ => unreachable,
                    }
                }
            });
        let mut nodes = futures::future::join_all(asks).await;
        nodes.sort_by_key(|s| s.id);
        Ok(v1::ClusterStatusResponse {
            leader_id: n.replica.leader().map_or(0, |(id, _)| id),
            nodes,
        })
    }

    fn membership(&self) -> v1::ChangeMembershipResponse {
        let (voters, learners) = self.node.replica.members();
        v1::ChangeMembershipResponse { voters, learners }
    }

    async fn add(
        &self,
        req: v1::AddNodeRequest,
        fwd: bool,
    ) -> Result<v1::ChangeMembershipResponse, ServiceError> {
        if req.id == 0 {
            return Err(ServiceError::invalid(
                "id",
                "BAD_REPLICA_ID",
                "must be at least 1",
            ));
        }
        let has_port = req
            .address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port {
            return Err(ServiceError::invalid(
                "address",
                "BAD_ADDRESS",
                format!("{:?} is not a host:port address", req.address),
            ));
        }
        match self
            .node
            .replica
            .add_node(req.id, req.address.clone(), CATCH_UP_TIMEOUT)
            .await
        {
            Ok(()) => Ok(self.membership()),
            Err(e) => {
                let e = ServiceError::from(e);
                match forward_target(&e, fwd) {
                    Some(addr) => ClusterClient::new(self.node.channel_to(&addr))
                        .add_node(forward_request(req, CATCH_UP_TIMEOUT + FORWARD_TIMEOUT))
                        .await
                        .map(Response::into_inner)
                        .map_err(|s| forward_error(s, true)),
                    None => Err(e),
                }
            }
        }
    }

    async fn remove(
        &self,
        req: v1::RemoveNodeRequest,
        fwd: bool,
    ) -> Result<v1::ChangeMembershipResponse, ServiceError> {
        match self.node.replica.remove_node(req.id).await {
            Ok(()) => Ok(self.membership()),
            Err(e) => {
                let e = ServiceError::from(e);
                match forward_target(&e, fwd) {
                    Some(addr) => ClusterClient::new(self.node.channel_to(&addr))
                        .remove_node(forward_request(req, FORWARD_TIMEOUT))
                        .await
                        .map(Response::into_inner)
                        .map_err(|s| forward_error(s, true)),
                    None => Err(e),
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn cluster_status(
        &self,
        _request: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatusResponse>, Status> {
        self.node.observe("ClusterStatus", self.status()).await
    }

    async fn get_node_status(
        &self,
        _request: Request<v1::NodeStatusRequest>,
    ) -> Result<Response<v1::NodeStatus>, Status> {
        let status = self.local_status();
        self.node
            .observe("GetNodeStatus", async { Ok(status) })
            .await
    }

    async fn add_node(
        &self,
        request: Request<v1::AddNodeRequest>,
    ) -> Result<Response<v1::ChangeMembershipResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("AddNode", self.add(request.into_inner(), fwd))
            .await
    }

    async fn remove_node(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::ChangeMembershipResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("RemoveNode", self.remove(request.into_inner(), fwd))
            .await
    }
}
