//! Settings for a function: the secrets named by the variables of [`SECRET_ARN_VARS`] (Secrets
//! Manager secrets whose `SecretString` is a JSON object of name → string), then the process
//! environment.
//!
//! Keys, webhook secrets and the unsubscribe secret live in secrets, never in plain environment
//! variables or template parameters; the model's `${VAR}` references and the API key settings
//! are looked up here. The stacks split them by consumer — API keys, the CRM's feedback secret,
//! the webhooks' URLs and secrets, the unsubscribe secret — and give each function the variables
//! (and the IAM grants) of only the secrets it reads; `EMBER_SECRETS_ARN` still names one secret
//! holding everything. The secrets are read once, when the container starts.

use aws_sdk_secretsmanager::Client;
use std::collections::HashMap;

/// The variable naming one secret that holds every setting (a single-secret deployment).
pub const SECRETS_ARN_VAR: &str = "EMBER_SECRETS_ARN";

/// Every variable that may name a secret, in the order they are read: the single secret, then
/// one per consumer — `EMBER_WRITE_KEYS` / `EMBER_ADMIN_KEYS` (ingest, api), `EMBER_CRM_SECRET`
/// (api), the model's webhook `${VAR}`s (handoff), `EMBER_UNSUBSCRIBE_SECRET` (api, drip).
pub const SECRET_ARN_VARS: &[&str] =
    &[SECRETS_ARN_VAR, "EMBER_KEYS_SECRET_ARN", "EMBER_CRM_SECRET_ARN", "EMBER_WEBHOOKS_SECRET_ARN", "EMBER_UNSUBSCRIBE_SECRET_ARN"];

/// Reading the secret failed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Secrets Manager refused or failed.
    #[error("reading the secret {arn}: {message}")]
    Read {
        /// ARN of the secret, from one of the [`SECRET_ARN_VARS`] variables.
        arn: String,
        /// The Secrets Manager error (access denied, not found, network…).
        message: String,
    },
    /// The secret is not a JSON object of strings.
    #[error("the secret {arn} must be a JSON object of name → string: {message}")]
    Shape {
        /// ARN of the secret, from one of the [`SECRET_ARN_VARS`] variables.
        arn: String,
        /// The JSON parse error of its `SecretString`.
        message: String,
    },
    /// Two secrets define the same name with different values (which one is meant would be a
    /// guess).
    #[error("{name} is in two secrets with different values, {first} and {second}: keep it in one")]
    Duplicate {
        /// The setting's name, e.g. `EMBER_WRITE_KEYS`.
        name: String,
        /// ARN of the secret read first.
        first: String,
        /// ARN of the later secret that disagrees.
        second: String,
    },
}

/// Name → value settings (secret first, then environment).
#[derive(Clone, Default)]
pub struct Settings {
    secret: HashMap<String, String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values are secrets.
        let mut names: Vec<_> = self.secret.keys().collect();
        names.sort();
        f.debug_struct("Settings").field("secret_names", &names).finish()
    }
}

impl Settings {
    /// Settings from the environment only.
    pub fn from_env() -> Settings {
        Settings::default()
    }

    /// Reads the secrets named by the [`SECRET_ARN_VARS`] that are set in the environment.
    pub async fn load(conf: &aws_config::SdkConfig) -> Result<Settings, SettingsError> {
        Settings::load_from(conf, &|name| std::env::var(name).ok()).await
    }

    /// As [`Settings::load`], with the variables read through `env`. A secret named by two
    /// variables is read once; a name defined by two secrets with different values is an error
    /// (with the same value it is a secret being split, half way: fine).
    pub async fn load_from(conf: &aws_config::SdkConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let mut arns: Vec<String> = Vec::new();
        for var in SECRET_ARN_VARS {
            if let Some(arn) = env(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
                if !arns.contains(&arn) {
                    arns.push(arn);
                }
            }
        }
        if arns.is_empty() {
            return Ok(Settings::default());
        }
        let client = Client::new(conf);
        let mut secrets = Vec::with_capacity(arns.len());
        for arn in arns {
            let out = client.get_secret_value().secret_id(&arn).send().await.map_err(|e| SettingsError::Read {
                arn: arn.clone(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
            let text = out.secret_string().unwrap_or("{}").to_string();
            secrets.push((arn, text));
        }
        Settings::merge(&secrets)
    }

    /// Settings from the JSON text of a secret.
    pub fn parse(arn: &str, text: &str) -> Result<Settings, SettingsError> {
        Settings::merge(&[(arn.to_string(), text.to_string())])
    }

    /// Settings from several secrets (ARN, JSON text), each name with one value only.
    pub fn merge(secrets: &[(String, String)]) -> Result<Settings, SettingsError> {
        let mut secret = HashMap::new();
        let mut from: HashMap<String, &str> = HashMap::new();
        for (arn, text) in secrets {
            let one: HashMap<String, String> =
                serde_json::from_str(text).map_err(|e| SettingsError::Shape { arn: arn.clone(), message: e.to_string() })?;
            for (name, value) in one {
                if let Some(first) = from.get(&name) {
                    if secret.get(&name) == Some(&value) {
                        continue;
                    }
                    return Err(SettingsError::Duplicate { name, first: first.to_string(), second: arn.clone() });
                }
                from.insert(name.clone(), arn);
                secret.insert(name, value);
            }
        }
        Ok(Settings { secret })
    }

    /// A setting: the secret's value, else the environment's.
    pub fn get(&self, name: &str) -> Option<String> {
        self.secret.get(name).cloned().or_else(|| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_first_then_environment() {
        let s = Settings::parse("arn", r#"{"EMBER_TEST_SETTING_A": "from-secret"}"#).unwrap();
        assert_eq!(s.get("EMBER_TEST_SETTING_A").as_deref(), Some("from-secret"));
        assert_eq!(s.get("EMBER_TEST_SETTING_SURELY_UNSET"), None);
        assert!(s.get("PATH").is_some());
        assert!(!format!("{s:?}").contains("from-secret"));
    }

    #[test]
    fn per_consumer_secrets_merge_and_a_name_with_two_values_is_refused() {
        let keys = ("arn:keys".to_string(), r#"{"EMBER_TEST_SETTING_KEYS": "k"}"#.to_string());
        let crm = ("arn:crm".to_string(), r#"{"EMBER_TEST_SETTING_CRM": "c"}"#.to_string());
        let s = Settings::merge(&[keys.clone(), crm]).unwrap();
        assert_eq!(s.get("EMBER_TEST_SETTING_KEYS").as_deref(), Some("k"));
        assert_eq!(s.get("EMBER_TEST_SETTING_CRM").as_deref(), Some("c"));
        let twice = ("arn:other".to_string(), r#"{"EMBER_TEST_SETTING_KEYS": "k2"}"#.to_string());
        let keys_again = || keys.clone();
        let e = Settings::merge(&[keys.clone(), twice]).unwrap_err().to_string();
        assert!(e.contains("EMBER_TEST_SETTING_KEYS") && e.contains("arn:keys") && e.contains("arn:other"), "{e}");
        assert!(!e.contains("k2"), "values never appear in errors: {e}");
        // The same value in two secrets (a secret being split): fine.
        let copy = ("arn:copy".to_string(), r#"{"EMBER_TEST_SETTING_KEYS": "k"}"#.to_string());
        let s = Settings::merge(&[keys_again(), copy]).unwrap();
        assert_eq!(s.get("EMBER_TEST_SETTING_KEYS").as_deref(), Some("k"));
    }

    #[test]
    fn a_bad_secret_names_the_problem() {
        let e = Settings::parse("arn:x", r#"{"A": 1}"#).unwrap_err().to_string();
        assert!(e.contains("arn:x") && e.contains("JSON object"), "{e}");
    }
}
