//! The HTTP side of the connectors: one client per source with a timeout, retries with
//! exponential backoff and jitter on timeouts, connection errors, 429 and 5xx (honouring
//! `Retry-After`), and a fast, clear failure on 401/403. Messages name the source and
//! the endpoint, never a credential: credentials travel only in bodies and headers.

use std::time::Duration;

use anyhow::{Result, bail};
use reqwest::{RequestBuilder, Response, StatusCode};

/// A source's HTTP client.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    source: String,
    retries: u32,
    /// First backoff; doubled on each retry.
    base_delay: Duration,
}

/// An answer: status, headers we use, body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_range: Option<String>,
    pub body: bytes::Bytes,
}

impl Http {
    pub fn new(source: &str, timeout_s: f64, retries: u32, backoff_ms: u64) -> Result<Http> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(timeout_s))
            .connect_timeout(Duration::from_secs_f64(timeout_s.min(10.0)))
            .user_agent(concat!("ticketlake/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let base_delay = Duration::from_millis(backoff_ms);
        Ok(Http {
            client,
            source: source.to_string(),
            retries,
            base_delay,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes, retrying what is worth retrying. `what` names the
    /// call in messages (`iTop core/get UserRequest`). Statuses other than 2xx that are not
    /// retried come back to the caller (GLPI answers 400 at the end of a range).
    pub async fn send(&self, what: &str, build: impl Fn() -> RequestBuilder) -> Result<Answer> {
        let mut attempt = 0u32;
        loop {
            let outcome = build().send().await;
            let retry_after = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        let body = resp.bytes().await.unwrap_or_default();
                        let text =
                            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                        bail!(
                            "source '{}': {what} was refused ({status}: {}): check the credentials named in the config and the account's rights",
                            self.source,
                            text.trim()
                        );
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        let after = retry_after(&resp);
                        if attempt >= self.retries {
                            bail!(
                                "source '{}': {what} failed with {status} after {} attempts",
                                self.source,
                                attempt + 1
                            );
                        }
                        tracing::warn!(source = %self.source, %status, attempt, "{what}: retrying");
                        after
                    } else {
                        return read(resp).await.map_err(|e| {
                            anyhow::anyhow!(
                                "source '{}': {what}: reading the answer: {}",
                                self.source,
                                clean(&e)
                            )
                        });
                    }
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() => {
                    if attempt >= self.retries {
                        bail!(
                            "source '{}': {what} failed after {} attempts: {}",
                            self.source,
                            attempt + 1,
                            clean(&e)
                        );
                    }
                    tracing::warn!(source = %self.source, attempt, error = %clean(&e), "{what}: retrying");
                    None
                }
                Err(e) => bail!("source '{}': {what}: {}", self.source, clean(&e)),
            };
            let backoff = self.base_delay * 2u32.saturating_pow(attempt);
            let jitter = backoff.mul_f64(jitter_fraction());
            tokio::time::sleep(retry_after.unwrap_or(backoff + jitter)).await;
            attempt += 1;
        }
    }
}

async fn read(resp: Response) -> reqwest::Result<Answer> {
    let status = resp.status();
    let content_range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().await?;
    Ok(Answer {
        status,
        content_range,
        body,
    })
}

/// `Retry-After` in seconds (capped at five minutes).
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

/// A fraction in [0, 0.5) that differs between calls and processes.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() % 1000) as f64 / 2000.0
}

/// The error without its URL's query (which could carry a token on some setups).
fn clean(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        let mut bare = url.clone();
        bare.set_query(None);
        let _ = bare.set_password(None);
        text = text.replace(url.as_str(), bare.as_str());
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
