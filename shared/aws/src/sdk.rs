//! How every AWS client of Ember is configured: the standard AWS environment (`AWS_REGION`,
//! `AWS_ENDPOINT_URL`, the credentials chain) over one HTTPS client — rustls with the *ring*
//! crypto provider, the same one the webhook sender uses, so a function links one TLS crypto
//! library rather than two.
//!
//! Root certificates come from the system's store. [`use_system_ca_bundle`] points that store
//! at the system's CA bundle file, so a container reads one file at start instead of probing
//! and walking certificate directories (the largest part of a client's set-up time).

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use std::path::Path;

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

/// The configuration loader every client of Ember starts from: the standard AWS environment
/// and Ember's HTTPS client. Tests add their endpoint and credentials to it.
pub fn sdk_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client())
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

    #[tokio::test]
    async fn clients_get_embers_https_client() {
        let conf = sdk_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("a", "b", None, None, "test"))
            .load()
            .await;
        assert!(conf.http_client().is_some());
    }
}
