//! Prometheus metrics: what operators graph and alert on.
//!
//! The recorder is process-wide; every `Application` in a process shares it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const DELIVERIES: &str = "newsletter_deliveries_total";
pub const SMTP_SECONDS: &str = "newsletter_smtp_send_seconds";
pub const SIGNUPS: &str = "newsletter_signups_total";
pub const VOTES: &str = "newsletter_votes_total";
pub const BOUNCES: &str = "newsletter_bounces_total";
pub const QUEUE_DEPTH: &str = "newsletter_queue_depth";
pub const WEBHOOKS: &str = "newsletter_webhook_deliveries_total";
pub const HTTP_REQUESTS: &str = "newsletter_http_requests_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once; later calls return the same handle. `None`
/// when another recorder was installed first (metrics are then not ours to
/// render).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(SMTP_SECONDS.to_string()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            metrics::describe_counter!(
                DELIVERIES,
                "Messages handled by the workers, by kind and outcome"
            );
            metrics::describe_histogram!(SMTP_SECONDS, "Time to hand one message to the relay");
            metrics::describe_counter!(SIGNUPS, "Sign-up requests by outcome");
            metrics::describe_counter!(
                BOUNCES,
                "Bounces and complaints recorded, by kind and where they came from"
            );
            metrics::describe_counter!(VOTES, "Feedback answers recorded");
            metrics::describe_counter!(
                WEBHOOKS,
                "Outgoing webhook posts by outcome: delivered, retry, failed"
            );
            metrics::describe_counter!(
                HTTP_REQUESTS,
                "HTTP requests answered, by method, route pattern and status"
            );
            Some(handle)
        })
        .clone()
}
