//! The `dialkv.v1.Namespaces` service: create, list, describe and drop namespaces.

use std::sync::Arc;

use dialkv_proto::v1::{self, namespaces_client::NamespacesClient, namespaces_server::Namespaces};
use tonic::{Request, Response, Status};

use super::{forward_error, forward_request, forward_target, forwarded, Node, FORWARD_TIMEOUT};
use crate::error::ServiceError;
use crate::limits::{check_namespace_name, enum_field};
use crate::storage::store::{Command, NamespaceMeta, Outcome};

/// The Namespaces service of one replica.
#[derive(Clone, Debug)]
pub struct NamespacesService {
    node: Arc<Node>,
}

impl NamespacesService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn info(&self, mut meta: NamespaceMeta) -> v1::NamespaceInfo {
        // Every namespace is held by every voter (one Raft group per cluster); a spec with 0
        // replicas (the `default` namespace) means "every replica", whatever their number.
        let (voters, _) = self.node.replica.members();
        if meta.spec.replicas == 0 {
            meta.spec.replicas = voters.len() as u32;
        }
        v1::NamespaceInfo {
            spec: Some(meta.spec),
            replica_ids: voters,
            revision: meta.revision,
        }
    }

    /// Validates a spec and fills in its defaults.
    fn check_spec(
        spec: Option<v1::NamespaceSpec>,
        cluster_size: u32,
    ) -> Result<v1::NamespaceSpec, ServiceError> {
        let Some(mut spec) = spec else {
            return Err(ServiceError::invalid("spec", "SPEC_MISSING", "is required"));
        };
        check_namespace_name("spec.name", &spec.name)?;
        let protocol: v1::Protocol = enum_field("spec.protocol", spec.protocol, "0 to 2")?;
        let conflicts: v1::ConflictPolicy = enum_field("spec.conflicts", spec.conflicts, "0 to 2")?;
        if spec.replicas == 0 {
            spec.replicas = cluster_size;
        }
        if protocol == v1::Protocol::Quorum {
            for (field, v) in [
                ("spec.write_quorum", spec.write_quorum),
                ("spec.read_quorum", spec.read_quorum),
            ] {
                if v > spec.replicas {
                    return Err(ServiceError::invalid(
                        field,
                        "QUORUM_TOO_LARGE",
                        format!("{v} is over the namespace's {} replicas", spec.replicas),
                    ));
                }
            }
            if conflicts == v1::ConflictPolicy::Unspecified {
                spec.conflicts = v1::ConflictPolicy::Lww as i32;
            }
        } else {
            spec.protocol = v1::Protocol::PrimaryBackup as i32;
            for (field, v) in [
                ("spec.write_quorum", spec.write_quorum),
                ("spec.read_quorum", spec.read_quorum),
            ] {
                if v != 0 {
                    return Err(ServiceError::invalid(
                        field,
                        "QUORUM_NOT_APPLICABLE",
                        "applies to QUORUM namespaces only; leave it 0 for PRIMARY_BACKUP",
                    ));
                }
            }
            if conflicts != v1::ConflictPolicy::Unspecified {
                return Err(ServiceError::invalid(
                    "spec.conflicts",
                    "CONFLICTS_NOT_APPLICABLE",
                    "applies to QUORUM namespaces only; leave it unspecified for PRIMARY_BACKUP",
                ));
            }
        }
        if spec.replicas == 0 {
            spec.replicas = cluster_size;
        }
        if spec.replicas > cluster_size {
            return Err(ServiceError::FailedPrecondition {
                reason: "NOT_ENOUGH_REPLICAS",
                message: format!(
                    "spec.replicas: {} is more than the {cluster_size} replica(s) in this cluster",
                    spec.replicas
                ),
            });
        }
        if spec.replicas < cluster_size {
            // Placement on a subset of the replicas comes with sharding; until then a smaller
            // N would be a promise the cluster does not keep.
            return Err(ServiceError::invalid(
                "spec.replicas",
                "PLACEMENT_UNAVAILABLE",
                format!(
                    "{} is fewer than the {cluster_size} replicas of this cluster: every namespace is held by every replica; use 0 or {cluster_size}",
                    spec.replicas
                ),
            ));
        }
        Ok(spec)
    }

    async fn create(
        &self,
        req: v1::CreateNamespaceRequest,
        fwd: bool,
    ) -> Result<v1::CreateNamespaceResponse, ServiceError> {
        let (voters, _) = self.node.replica.members();
        let spec = Self::check_spec(req.spec.clone(), voters.len() as u32)?;
        match self.node.write(Command::CreateNamespace { spec }).await {
            Ok(Outcome::Created(meta)) => Ok(v1::CreateNamespaceResponse {
                namespace: Some(self.info(meta)),
            }),
            Ok(other) => unreachable!("a create command has a created outcome: {other:?}"),
            Err(e) => match forward_target(&e, fwd) {
                Some(addr) => NamespacesClient::new(self.node.channel_to(&addr))
                    .create_namespace(forward_request(req, FORWARD_TIMEOUT))
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| forward_error(s, true)),
                None => Err(e),
            },
        }
    }

    async fn describe(
        &self,
        req: v1::DescribeNamespaceRequest,
    ) -> Result<v1::DescribeNamespaceResponse, ServiceError> {
        let meta = self.node.namespace("name", &req.name)?;
        Ok(v1::DescribeNamespaceResponse {
            namespace: Some(self.info(meta)),
        })
    }

    async fn drop_namespace(
        &self,
        req: v1::DropNamespaceRequest,
        fwd: bool,
    ) -> Result<v1::DropNamespaceResponse, ServiceError> {
        check_namespace_name("name", &req.name)?;
        match self
            .node
            .write(Command::DropNamespace {
                name: req.name.clone(),
            })
            .await
        {
            Ok(_) => Ok(v1::DropNamespaceResponse {}),
            Err(e) => match forward_target(&e, fwd) {
                Some(addr) => NamespacesClient::new(self.node.channel_to(&addr))
                    .drop_namespace(forward_request(req, FORWARD_TIMEOUT))
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| forward_error(s, true)),
                None => Err(e),
            },
        }
    }
}

#[tonic::async_trait]
impl Namespaces for NamespacesService {
    async fn create_namespace(
        &self,
        request: Request<v1::CreateNamespaceRequest>,
    ) -> Result<Response<v1::CreateNamespaceResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("CreateNamespace", self.create(request.into_inner(), fwd))
            .await
    }

    async fn list_namespaces(
        &self,
        _request: Request<v1::ListNamespacesRequest>,
    ) -> Result<Response<v1::ListNamespacesResponse>, Status> {
        let list = async {
            let namespaces = self
                .node
                .store
                .namespaces()
                .into_iter()
                .map(|m| self.info(m))
                .collect();
            Ok(v1::ListNamespacesResponse { namespaces })
        };
        self.node.observe("ListNamespaces", list).await
    }

    async fn describe_namespace(
        &self,
        request: Request<v1::DescribeNamespaceRequest>,
    ) -> Result<Response<v1::DescribeNamespaceResponse>, Status> {
        self.node
            .observe("DescribeNamespace", self.describe(request.into_inner()))
            .await
    }

    async fn drop_namespace(
        &self,
        request: Request<v1::DropNamespaceRequest>,
    ) -> Result<Response<v1::DropNamespaceResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe(
                "DropNamespace",
                NamespacesService::drop_namespace(self, request.into_inner(), fwd),
            )
            .await
    }
}
