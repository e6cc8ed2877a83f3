//! Sending a checked request to the granted endpoint: a pooled keep-alive
//! client (rustls), the host's own DNS check, SigV4 signing with credentials
//! the guest never sees, bounded jittered retries, and a response size cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use rand::Rng;
use tokio::sync::Mutex;

use super::http::{AllowedRequest, HttpCapability, is_metadata_address};
use crate::config::{HttpAuth, HttpGrant};
use crate::runtime::bindings::http::{Header, HttpError, Response};

/// Response headers passed back to the guest; the rest stay with the host.
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "x-amzn-requestid",
    "x-amz-request-id",
    "retry-after",
];

/// Credentials are refreshed this long before they expire.
const CREDENTIAL_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The client and signer behind one provider's grant, built on first use.
pub(super) struct Transport {
    client: reqwest::Client,
    base_url: String,
    signer: Option<Signer>,
}

struct Signer {
    service: String,
    region: String,
    credentials: CredentialSource,
    cached: Mutex<Option<Credentials>>,
}

enum CredentialSource {
    /// Fixed test credentials for an emulator such as LocalStack.
    Static(Credentials),
    /// aws-config's default chain: env, profile, SSO, web identity, IMDS.
    DefaultChain(tokio::sync::OnceCell<aws_credential_types::provider::SharedCredentialsProvider>),
}

/// Resolves names with the system resolver, then drops link-local and
/// metadata addresses, so that DNS cannot point a grant at instance metadata.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| !is_metadata_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves only to link-local or metadata addresses").into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Transport {
    pub(super) fn new(grant: &HttpGrant) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(grant.connect_timeout)
            .timeout(grant.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            // Redirects could lead anywhere; proxies from the environment are
            // not part of the grant.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver))
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        let signer = match &grant.auth {
            HttpAuth::None => None,
            HttpAuth::AwsSigV4 {
                service,
                region,
                static_credentials,
            } => Some(Signer {
                service: service.clone(),
                region: region.clone(),
                credentials: match static_credentials {
                    Some(fixed) => CredentialSource::Static(Credentials::new(
                        &fixed.access_key_id,
                        &fixed.secret_access_key,
                        None,
                        None,
                        "keyhost-static",
                    )),
                    None => CredentialSource::DefaultChain(tokio::sync::OnceCell::new()),
                },
                cached: Mutex::new(None),
            }),
        };
        let e = &grant.endpoint;
        Ok(Self {
            client,
            base_url: format!("{}://{}:{}", e.scheme, e.host, e.port),
            signer,
        })
    }
}

impl Signer {
    async fn credentials(&self) -> Result<Credentials, HttpError> {
        let provider = match &self.credentials {
            CredentialSource::Static(credentials) => return Ok(credentials.clone()),
            CredentialSource::DefaultChain(provider) => provider,
        };
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref()
            && credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIAL_REFRESH_MARGIN)
        {
            return Ok(credentials.clone());
        }
        let provider = provider
            .get_or_init(|| async {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(self.region.clone()))
                    .load()
                    .await;
                config.credentials_provider().unwrap_or_else(|| {
                    aws_credential_types::provider::SharedCredentialsProvider::new(NoCredentials)
                })
            })
            .await;
        let fresh = provider.provide_credentials().await.map_err(|e| {
            HttpError::Failed(format!(
                "no AWS credentials for signing: {e}; configure them for the keyhost process \
                 (environment, profile, SSO, web identity or instance role)"
            ))
        })?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    async fn sign(&self, request: &mut reqwest::Request, body: &[u8]) -> Result<(), HttpError> {
        let credentials = self.credentials().await?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| HttpError::Failed(format!("cannot sign the request: {e}")))?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| HttpError::Failed(format!("cannot sign the request: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| HttpError::Failed(format!("cannot sign the request: {e}")))?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        for header in headers {
            let mut value = reqwest::header::HeaderValue::from_str(header.value())
                .map_err(|e| HttpError::Failed(format!("signing produced a bad header: {e}")))?;
            value.set_sensitive(header.sensitive());
            request.headers_mut().insert(header.name(), value);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no credentials provider is configured",
            ),
        ))
    }
}

pub(super) async fn send(
    http: &HttpCapability,
    provider: &str,
    request: AllowedRequest,
) -> Result<Response, HttpError> {
    let transport = http
        .transport()
        .map_err(|e| HttpError::Failed(format!("provider {provider}: {e}")))?;
    let attempts = http.grant.max_retries + 1;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = send_once(transport, http, &request).await;
        let retry = match &result {
            Ok(response) => is_retryable_status(response),
            Err(HttpError::Unreachable(_)) | Err(HttpError::Timeout(_)) => true,
            Err(_) => false,
        };
        if !retry || attempt >= attempts {
            return result;
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Throttling and server errors are worth another try; KMS reports
/// throttling as a 400 with `ThrottlingException`.
fn is_retryable_status(response: &Response) -> bool {
    response.status == 429
        || response.status >= 500
        || (response.status == 400
            && response
                .body
                .windows(19)
                .any(|w| w == b"ThrottlingException"))
}

/// Jittered exponential backoff: attempt n waits between half and all of
/// 25 ms × 2^n, at most 1 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = (25u64 << attempt.min(6)).min(1000);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

async fn send_once(
    transport: &Transport,
    http: &HttpCapability,
    request: &AllowedRequest,
) -> Result<Response, HttpError> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| HttpError::Denied(format!("method {:?} is not allowed", request.method)))?;
    let url = format!("{}{}", transport.base_url, request.path);
    let mut builder = transport
        .client
        .request(method, &url)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let mut built = builder
        .build()
        .map_err(|e| HttpError::Denied(format!("the request is not valid http: {e}")))?;
    if let Some(signer) = &transport.signer {
        signer.sign(&mut built, &request.body).await?;
    }
    let mut response = transport
        .client
        .execute(built)
        .await
        .map_err(|e| transport_error(&url, e))?;
    let limit = http.max_response_bytes();
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(too_large(limit));
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| RESPONSE_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some(Header {
                name: name.as_str().to_owned(),
                value: value.to_str().ok()?.to_owned(),
            })
        })
        .collect();
    // Sized once from Content-Length, so the body (which may hold a wrapped
    // or plaintext data key) is not copied around by reallocation.
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&url, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn too_large(limit: usize) -> HttpError {
    HttpError::TooLarge(format!(
        "the response is larger than the {limit}-byte limit (limits.max_response_kib)"
    ))
}

fn transport_error(url: &str, error: reqwest::Error) -> HttpError {
    if error.is_timeout() {
        HttpError::Timeout(format!("{url} did not answer in time"))
    } else if error.is_connect() {
        HttpError::Unreachable(format!("cannot connect to {url}: {}", root_cause(&error)))
    } else {
        HttpError::Unreachable(format!("request to {url} failed: {}", root_cause(&error)))
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let delay = backoff(attempt);
            assert!(delay <= Duration::from_secs(1), "{delay:?}");
            assert!(delay >= Duration::from_millis(25), "{delay:?}");
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retried_but_client_errors_are_not() {
        let response = |status, body: &[u8]| Response {
            status,
            headers: vec![],
            body: body.to_vec(),
        };
        assert!(is_retryable_status(&response(503, b"")));
        assert!(is_retryable_status(&response(429, b"")));
        assert!(is_retryable_status(&response(
            400,
            br#"{"__type":"ThrottlingException"}"#
        )));
        assert!(!is_retryable_status(&response(
            400,
            br#"{"__type":"InvalidCiphertextException"}"#
        )));
        assert!(!is_retryable_status(&response(200, b"")));
    }
}
