//! How every AWS client of Ember is configured: the standard AWS environment (`AWS_REGION`,
//! `AWS_ENDPOINT_URL`, the credentials chain) over one HTTPS client — rustls with the *ring*
//! crypto provider, the same one the webhook sender uses, so a function links one TLS crypto
//! library rather than two.
//!
//! Root certificates come from the system's store. [`use_system_ca_bundle`] points that store
//! at the system's CA bundle file, so a container reads one file at start instead of probing
//! and walking certificate directories (the largest part of a client's set-up time).

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use std::path::Path;
use std::time::Duration;

/// CA bundle files, most likely first: Amazon Linux 2023 (the `provided.al2023` Lambda
/// runtime) and Red Hat family, then Debian and Ubuntu, then Alpine and SUSE.
const CA_BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The CA bundle the HTTPS client should read: `None` when `SSL_CERT_FILE` or `SSL_CERT_DIR`
/// already says where certificates are (the operator's choice stands), or when no bundle file
/// is found (the platform's own probing then applies).
pub fn system_ca_bundle() -> Option<&'static str> {
    let operator_set = std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some();
    choose_ca_bundle(operator_set, |p| Path::new(p).is_file())
}

fn choose_ca_bundle(operator_set: bool, is_file: impl Fn(&str) -> bool) -> Option<&'static str> {
    if operator_set {
        return None;
    }
    CA_BUNDLES.iter().copied().find(|p| is_file(p))
}

/// Sets `SSL_CERT_FILE` to [`system_ca_bundle`] when it finds one.
///
/// # Safety
///
/// Changes the process environment: call it before any other thread exists (first thing in
/// `main`, before the async runtime is built).
pub unsafe fn use_system_ca_bundle() {
    if let Some(path) = system_ca_bundle() {
        // SAFETY: the caller guarantees no other thread reads or writes the environment.
        unsafe { std::env::set_var("SSL_CERT_FILE", path) };
    }
}

/// Time to open a connection to an AWS endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time one attempt of a call may take: a request the service (or the network) holds without
/// answering is abandoned and retried by the SDK's standard retry policy, instead of using the
/// whole function's time on one stuck connection.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a call may take, every attempt and the back-off between them included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Overrides [`ATTEMPT_TIMEOUT`] (whole seconds ≥ 1), for a slow stand-in such as moto.
pub const ATTEMPT_TIMEOUT_VAR: &str = "EMBER_AWS_ATTEMPT_TIMEOUT_SECS";
/// Overrides [`OPERATION_TIMEOUT`] (whole seconds ≥ 1).
pub const OPERATION_TIMEOUT_VAR: &str = "EMBER_AWS_CALL_TIMEOUT_SECS";

/// The configuration loader every client of Ember starts from: the standard AWS environment,
/// Ember's HTTPS client and its timeouts ([`timeouts`]; the SDK sets none by default, so a
/// connection the peer never answers would hold a call until the function's own timeout).
/// Tests add their endpoint and credentials to it.
pub fn sdk_loader() -> ConfigLoader {
    let timeouts = timeouts(|name| std::env::var(name).ok()).unwrap_or_else(|e| {
        // The functions refuse to start on this (`AwsConfig::from_env`); tools warn.
        tracing::warn!(error = %e, "ignoring an invalid AWS timeout setting");
        timeouts(|_| None).unwrap_or_else(|_| TimeoutConfig::builder().build())
    });
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).timeout_config(timeouts)
}

/// Ember's timeouts for AWS calls: [`CONNECT_TIMEOUT`], and [`ATTEMPT_TIMEOUT`] and
/// [`OPERATION_TIMEOUT`] unless `var` gives [`ATTEMPT_TIMEOUT_VAR`] / [`OPERATION_TIMEOUT_VAR`].
/// `Err` names the setting that is not a whole number of seconds ≥ 1.
pub fn timeouts(var: impl Fn(&str) -> Option<String>) -> Result<TimeoutConfig, String> {
    let secs = |name: &str, default: Duration| -> Result<Duration, String> {
        match var(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Duration::from_secs(n)),
                _ => Err(format!("{name} must be a whole number of seconds ≥ 1, not {v:?}")),
            },
        }
    };
    let attempt = secs(ATTEMPT_TIMEOUT_VAR, ATTEMPT_TIMEOUT)?;
    let operation = secs(OPERATION_TIMEOUT_VAR, OPERATION_TIMEOUT)?;
    if operation < attempt {
        return Err(format!("{OPERATION_TIMEOUT_VAR} ({} s) must not be shorter than {ATTEMPT_TIMEOUT_VAR} ({} s)", operation.as_secs(), attempt.as_secs()));
    }
    Ok(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(attempt).operation_timeout(operation).build())
}

/// Ember's HTTPS client for AWS clients built without [`sdk_loader`].
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// [`sdk_loader`], loaded.
pub async fn sdk_config() -> SdkConfig {
    sdk_loader().load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_setting_stands() {
        assert_eq!(choose_ca_bundle(true, |_| true), None);
    }

    #[test]
    fn amazon_linux_first_then_debian_then_nothing() {
        assert_eq!(choose_ca_bundle(false, |_| true), Some("/etc/pki/tls/certs/ca-bundle.crt"));
        assert_eq!(
            choose_ca_bundle(false, |p| p == "/etc/ssl/certs/ca-certificates.crt"),
            Some("/etc/ssl/certs/ca-certificates.crt")
        );
        assert_eq!(choose_ca_bundle(false, |_| false), None);
    }

    #[test]
    fn timeouts_default_and_overridden_and_bad_values_named() {
        let none = timeouts(|_| None).unwrap();
        assert_eq!(none.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(none.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(none.connect_timeout(), Some(CONNECT_TIMEOUT));
        let slow = timeouts(|n| Some(if n == ATTEMPT_TIMEOUT_VAR { "60" } else { "300" }.to_string())).unwrap();
        assert_eq!(slow.operation_attempt_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(slow.operation_timeout(), Some(Duration::from_secs(300)));
        for bad in ["0", "-1", "ten", "1.5", "１０"] {
            let e = timeouts(|n| (n == ATTEMPT_TIMEOUT_VAR).then(|| bad.to_string())).unwrap_err();
            assert!(e.contains(ATTEMPT_TIMEOUT_VAR) && e.contains(bad), "{e}");
        }
        let e = timeouts(|n| Some(if n == ATTEMPT_TIMEOUT_VAR { "60" } else { "5" }.to_string())).unwrap_err();
        assert!(e.contains("must not be shorter"), "{e}");
    }

    #[tokio::test]
    async fn clients_get_embers_https_client() {
        let conf = sdk_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("a", "b", None, None, "test"))
            .load()
            .await;
        assert!(conf.http_client().is_some());
        // Ember's timeouts, as this environment sets them.
        let expected = timeouts(|n| std::env::var(n).ok()).unwrap_or_else(|_| timeouts(|_| None).unwrap());
        let got = conf.timeout_config().expect("timeouts are set");
        assert_eq!(got.operation_attempt_timeout(), expected.operation_attempt_timeout());
        assert_eq!(got.operation_timeout(), expected.operation_timeout());
        assert_eq!(got.connect_timeout(), Some(CONNECT_TIMEOUT));
    }
}
