//! Prometheus metrics, served as text on the admin port's `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by RPC and gRPC status code.
    pub requests: IntCounterVec,
    /// Request latency in seconds by RPC and gRPC status code.
    pub request_seconds: HistogramVec,
    /// Requests from other replicas (the quorum protocol's `Quorum.*`) by RPC and status
    /// code, apart from clients' requests so that those still count client traffic alone.
    pub peer_requests: IntCounterVec,
    /// Their latency in seconds by RPC and status code.
    pub peer_request_seconds: HistogramVec,
    /// Commands per storage write batch (group commit size).
    pub storage_batch_commands: Histogram,
    /// Time to write and sync one storage batch, in seconds.
    pub storage_sync_seconds: Histogram,
    /// The quorum protocol's state at this replica, by `what`: `tombstones` (deleted keys
    /// not yet collected), `pending_updates` (received, waiting for their dependencies),
    /// `outgoing_log` (own updates not yet applied by every peer), `lag_versions`.
    pub quorum: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("dialkv".into()), None).expect("static prefix is valid");
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "gRPC requests by method and status code"),
            &["rpc", "code"],
        )
        .expect("static metric definition");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "gRPC request latency by method and status code",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("static buckets")),
            &["rpc", "code"],
        )
        .expect("static metric definition");
        let peer_requests = IntCounterVec::new(
            Opts::new(
                "peer_requests_total",
                "requests from other replicas by method and status code",
            ),
            &["rpc", "code"],
        )
        .expect("static metric definition");
        let peer_request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "peer_request_duration_seconds",
                "latency of requests from other replicas by method and status code",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("static buckets")),
            &["rpc", "code"],
        )
        .expect("static metric definition");
        let storage_batch_commands = Histogram::with_opts(
            HistogramOpts::new("storage_batch_commands", "commands per storage write batch")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 10).expect("static buckets")),
        )
        .expect("static metric definition");
        let storage_sync_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "storage_sync_seconds",
                "time to write and sync one storage batch",
            )
            .buckets(prometheus::exponential_buckets(0.00005, 2.0, 16).expect("static buckets")),
        )
        .expect("static metric definition");
        let quorum = IntGaugeVec::new(
            Opts::new(
                "quorum_state",
                "the quorum protocol's state at this replica",
            ),
            &["what"],
        )
        .expect("static metric definition");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(peer_requests.clone()),
            Box::new(peer_request_seconds.clone()),
            Box::new(storage_batch_commands.clone()),
            Box::new(storage_sync_seconds.clone()),
            Box::new(quorum.clone()),
        ] {
            registry
                .register(m)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            requests,
            request_seconds,
            peer_requests,
            peer_request_seconds,
            storage_batch_commands,
            storage_sync_seconds,
            quorum,
        }
    }

    /// Records one finished request.
    pub fn observe_request(&self, rpc: &str, code: tonic::Code, seconds: f64) {
        let code = format!("{code:?}");
        self.requests.with_label_values(&[rpc, &code]).inc();
        self.request_seconds
            .with_label_values(&[rpc, &code])
            .observe(seconds);
    }

    /// Records one finished request from another replica.
    pub fn observe_peer_request(&self, rpc: &str, code: tonic::Code, seconds: f64) {
        let code = format!("{code:?}");
        self.peer_requests.with_label_values(&[rpc, &code]).inc();
        self.peer_request_seconds
            .with_label_values(&[rpc, &code])
            .observe(seconds);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
