//! A [`WebhookSender`] over HTTP (ureq with rustls), for the dispatcher that delivers to
//! the endpoints the API creates.

use std::time::Duration;

use crate::webhook::{SendOutcome, WebhookSender};

/// Posts deliveries with a timeout and without following redirects (a redirect is an
/// answer, not a delivery: it counts as a failure to be retried).
#[derive(Debug, Clone)]
pub struct HttpSender {
    agent: ureq::Agent,
}

/// Default time for one delivery attempt, connection included.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(15);

impl HttpSender {
    /// A sender giving each attempt at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self { agent }
    }
}

impl Default for HttpSender {
    fn default() -> Self {
        Self::new(DEFAULT_SEND_TIMEOUT)
    }
}

impl WebhookSender for HttpSender {
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> SendOutcome {
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send(body) {
            Ok(response) => SendOutcome::Status(response.status().as_u16()),
            Err(ureq::Error::StatusCode(code)) => SendOutcome::Status(code),
            // The error names the host and the failure, never the body or the headers.
            Err(e) => SendOutcome::Error(e.to_string()),
        }
    }
}
