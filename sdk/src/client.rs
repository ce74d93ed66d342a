//! The connection both [`ContainerRuntime`](crate::ContainerRuntime) and
//! [`ImageStore`](crate::ImageStore) talk through.

use std::time::Duration;

use libcrun_shim_proto::v1::container_service_client::ContainerServiceClient;
use libcrun_shim_proto::v1::event_service_client::EventServiceClient;
use libcrun_shim_proto::v1::exec_service_client::ExecServiceClient;
use libcrun_shim_proto::v1::health_check_service_client::HealthCheckServiceClient;
use libcrun_shim_proto::v1::image_service_client::ImageServiceClient;
use libcrun_shim_proto::v1::log_service_client::LogServiceClient;
use libcrun_shim_proto::v1::metrics_service_client::MetricsServiceClient;
use libcrun_shim_proto::v1::network_service_client::NetworkServiceClient;
use libcrun_shim_proto::v1::system_service_client::SystemServiceClient;
use tonic::transport::Channel;

use crate::config::RuntimeConfig;
use crate::error::Result;
use crate::transport;

/// The largest message sent or accepted: the servers' own default.
const MAX_MESSAGE: usize = libcrun_shim_proto::MAX_MESSAGE_BYTES;

/// A connected channel and the settings that apply to every call.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    channel: Channel,
    endpoint: String,
    agent: String,
    request_timeout: Option<Duration>,
}

macro_rules! service {
    ($name:ident, $client:ident) => {
        pub(crate) fn $name(&self) -> $client<Channel> {
            $client::new(self.channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
        }
    };
}

impl Client {
    /// Validates `config` and connects to its endpoint.
    pub(crate) async fn connect(config: &RuntimeConfig) -> Result<Client> {
        config.validate()?;
        let channel = transport::connect(&config.endpoint, config.connect_timeout).await?;
        Ok(Client {
            channel,
            endpoint: config.endpoint.clone(),
            agent: config.agent.clone().unwrap_or_default(),
            request_timeout: config.request_timeout,
        })
    }

    /// The endpoint connected to.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The agent selector of requests that take one (empty: any).
    pub(crate) fn agent(&self) -> String {
        self.agent.clone()
    }

    /// A request with the configured deadline (for calls that do not wait
    /// on containers or stream).
    pub(crate) fn with_deadline<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(timeout) = self.request_timeout {
            request.set_timeout(timeout);
        }
        request
    }

    service!(containers, ContainerServiceClient);
    service!(exec, ExecServiceClient);
    service!(logs, LogServiceClient);
    service!(events, EventServiceClient);
    service!(metrics, MetricsServiceClient);
    service!(networks, NetworkServiceClient);
    service!(health, HealthCheckServiceClient);
    service!(images, ImageServiceClient);
    service!(system, SystemServiceClient);
}
