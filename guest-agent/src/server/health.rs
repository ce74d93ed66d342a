//! HealthCheckService over the runtime.

use std::sync::Arc;

use libcrun_shim_proto::v1::{self as pb, health_check_service_server::HealthCheckService};
use tonic::{Request, Response};

use super::RpcResult;
use crate::runtime::Runtime;

/// The health-check service.
pub struct Health {
    runtime: Arc<Runtime>,
}

impl Health {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Health { runtime }
    }
}

#[tonic::async_trait]
impl HealthCheckService for Health {
    async fn get_health(
        &self,
        request: Request<pb::GetHealthRequest>,
    ) -> RpcResult<pb::GetHealthResponse> {
        let id = request.into_inner().container_id;
        let health = self.runtime.health(&id)?;
        Ok(Response::new(pb::GetHealthResponse {
            health: Some(pb::ContainerHealth {
                container_id: id,
                ..(&health).into()
            }),
        }))
    }
}
