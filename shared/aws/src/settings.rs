//! Settings for a function: the secret named by `EMBER_SECRETS_ARN` (a Secrets Manager secret
//! whose `SecretString` is a JSON object of name → string), then the process environment.
//!
//! Keys, webhook secrets and the unsubscribe secret live in the secret, never in plain
//! environment variables or template parameters; the model's `${VAR}` references and the API
//! key settings are looked up here. The secret is read once, when the container starts.

use aws_sdk_secretsmanager::Client;
use std::collections::HashMap;

/// The variable naming the secret.
pub const SECRETS_ARN_VAR: &str = "EMBER_SECRETS_ARN";

/// Reading the secret failed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Secrets Manager refused or failed.
    #[error("reading the secret {arn}: {message}")]
    Read {
        /// The secret.
        arn: String,
        /// Why.
        message: String,
    },
    /// The secret is not a JSON object of strings.
    #[error("the secret {arn} must be a JSON object of name → string: {message}")]
    Shape {
        /// The secret.
        arn: String,
        /// What is wrong.
        message: String,
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

    /// Reads the secret named by `EMBER_SECRETS_ARN` when it is set.
    pub async fn load(conf: &aws_config::SdkConfig) -> Result<Settings, SettingsError> {
        let Some(arn) = std::env::var(SECRETS_ARN_VAR).ok().filter(|v| !v.trim().is_empty()) else {
            return Ok(Settings::default());
        };
        let out = Client::new(conf).get_secret_value().secret_id(&arn).send().await.map_err(|e| SettingsError::Read {
            arn: arn.clone(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
        let text = out.secret_string().unwrap_or("{}");
        Settings::parse(&arn, text)
    }

    /// Settings from the JSON text of a secret.
    pub fn parse(arn: &str, text: &str) -> Result<Settings, SettingsError> {
        let secret: HashMap<String, String> =
            serde_json::from_str(text).map_err(|e| SettingsError::Shape { arn: arn.into(), message: e.to_string() })?;
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
    fn a_bad_secret_names_the_problem() {
        let e = Settings::parse("arn:x", r#"{"A": 1}"#).unwrap_err().to_string();
        assert!(e.contains("arn:x") && e.contains("JSON object"), "{e}");
    }
}
