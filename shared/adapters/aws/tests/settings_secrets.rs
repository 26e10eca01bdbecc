//! Settings split by consumer, read from a real Secrets Manager API (moto): each variable of
//! `SECRET_ARN_VARS` names one secret, a function sees the union of those it is given, a name
//! defined twice with different values is refused, and a secret it may not read (here: one that does not exist) is a
//! named error at start.
//!
//! Needs a moto server: `EMBER_MOTO_ENDPOINT=$(scripts/moto) cargo test -p ember-aws --test
//! settings_secrets -- --include-ignored`.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::config::Credentials;
use ember_aws::Settings;
use std::collections::HashMap;

async fn conf() -> aws_config::SdkConfig {
    let endpoint = std::env::var("EMBER_MOTO_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .expect("EMBER_MOTO_ENDPOINT is not set: start a moto server with `export EMBER_MOTO_ENDPOINT=$(scripts/moto)`");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(ember_aws::sdk::http_client())
        .load()
        .await
}

async fn secret(conf: &aws_config::SdkConfig, name: &str, value: serde_json::Value) -> String {
    let name = format!("{name}-{}", uuid::Uuid::new_v4());
    let out = aws_sdk_secretsmanager::Client::new(conf)
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create_secret on moto");
    out.arn().expect("an ARN").to_string()
}

#[tokio::test]
#[ignore = "needs a moto server: set EMBER_MOTO_ENDPOINT (scripts/moto)"]
async fn each_function_reads_the_union_of_its_per_consumer_secrets() {
    let conf = conf().await;
    let keys = secret(&conf, "keys", serde_json::json!({"EMBER_WRITE_KEYS": "sha256:aa@https://www.example.com", "EMBER_ADMIN_KEYS": "sha256:bb"})).await;
    let crm = secret(&conf, "crm", serde_json::json!({"EMBER_CRM_SECRET": "whsec_Y3Jt"})).await;
    let hooks = secret(&conf, "hooks", serde_json::json!({"CRM_WEBHOOK_URL": "https://crm.example/hook"})).await;

    // The api function: keys and the CRM secret, not the webhooks'.
    let env: HashMap<&str, String> = [("EMBER_KEYS_SECRET_ARN", keys.clone()), ("EMBER_CRM_SECRET_ARN", crm.clone())].into();
    let api = Settings::load_from(&conf, &|n| env.get(n).cloned()).await.expect("settings");
    assert_eq!(api.get("EMBER_ADMIN_KEYS").as_deref(), Some("sha256:bb"));
    assert_eq!(api.get("EMBER_CRM_SECRET").as_deref(), Some("whsec_Y3Jt"));
    assert_eq!(api.get("CRM_WEBHOOK_URL"), None, "the api function is not given the webhooks' secret");

    // The handoff function: the webhooks' secret only.
    let env: HashMap<&str, String> = [("EMBER_WEBHOOKS_SECRET_ARN", hooks.clone())].into();
    let handoff = Settings::load_from(&conf, &|n| env.get(n).cloned()).await.expect("settings");
    assert_eq!(handoff.get("CRM_WEBHOOK_URL").as_deref(), Some("https://crm.example/hook"));
    assert_eq!(handoff.get("EMBER_CRM_SECRET"), None);
    assert_eq!(handoff.get("EMBER_ADMIN_KEYS"), None);

    // One secret named by two variables is read once; a name in two secrets is refused.
    let env: HashMap<&str, String> = [("EMBER_SECRETS_ARN", keys.clone()), ("EMBER_KEYS_SECRET_ARN", keys.clone())].into();
    assert!(Settings::load_from(&conf, &|n| env.get(n).cloned()).await.is_ok());
    let again = secret(&conf, "again", serde_json::json!({"EMBER_ADMIN_KEYS": "sha256:cc"})).await;
    let env: HashMap<&str, String> = [("EMBER_KEYS_SECRET_ARN", keys.clone()), ("EMBER_CRM_SECRET_ARN", again)].into();
    let e = Settings::load_from(&conf, &|n| env.get(n).cloned()).await.unwrap_err().to_string();
    assert!(e.contains("EMBER_ADMIN_KEYS is in two secrets with different values"), "{e}");

    // A secret that cannot be read stops the start with its ARN named.
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ember-nope-AbCdEf";
    let env: HashMap<&str, String> = [("EMBER_UNSUBSCRIBE_SECRET_ARN", missing.to_string())].into();
    let e = Settings::load_from(&conf, &|n| env.get(n).cloned()).await.unwrap_err().to_string();
    assert!(e.contains(missing), "{e}");
}
