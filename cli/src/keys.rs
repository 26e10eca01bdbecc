//! `ember keys`: make API keys and print their configuration entries; and the keys of `ember
//! dev` when none are configured.

use anyhow::{Context, Result};
use ember_http::auth::{hash_entry, new_key, KeyKind};
use ember_http::{ApiConfig, ApiKeys};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `ember keys new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// An admin key (every route) instead of a write key (ingest only).
    #[arg(long)]
    pub admin: bool,
    /// A browser origin allowed to use the write key (repeat; `*` for any). Without one the
    /// key is for servers only.
    #[arg(long = "origin", conflicts_with = "admin")]
    pub origins: Vec<String>,
}

/// The configuration entry of a key: its hash, then its origins.
pub fn entry(key: &str, origins: &[String]) -> String {
    let mut e = hash_entry(key);
    if !origins.is_empty() {
        e.push('@');
        e.push_str(&origins.join(","));
    }
    e
}

/// Makes a key and prints it with its configuration entry (checked by parsing it back).
pub fn new(args: &NewArgs) -> Result<()> {
    let (kind, var) = if args.admin { (KeyKind::Admin, "EMBER_ADMIN_KEYS") } else { (KeyKind::Write, "EMBER_WRITE_KEYS") };
    let key = new_key(kind);
    let entry = entry(&key, &args.origins);
    let check = if args.admin { ApiKeys::parse("", &entry) } else { ApiKeys::parse(&entry, "") };
    check.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("key (shown once; give it to the client, keep it out of the repository):\n  {key}");
    println!("add this entry to {var} (entries are separated by `;`):\n  {entry}");
    Ok(())
}

/// `ember keys hash KEY`: the entry of an existing key.
pub fn hash(key: &str) {
    println!("{}", hash_entry(key.trim()));
}

/// Keys `ember dev` made on its first start, kept as hashes in the data folder.
#[derive(Debug, Serialize, Deserialize)]
struct DevKeys {
    write: String,
    admin: String,
    crm_secret: String,
}

/// The API configuration of `ember dev`: `EMBER_WRITE_KEYS` / `EMBER_ADMIN_KEYS` /
/// `EMBER_CRM_SECRET` when set; otherwise the keys made on the first start (a fresh pair is
/// printed once, its hashes kept in `<data>/keys.json`).
pub fn dev_api_config(data: &Path) -> Result<ApiConfig> {
    let mut config = ApiConfig::from_settings(|n| std::env::var(n).ok()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = data.join("keys.json");
    let saved: Option<DevKeys> = match std::fs::read_to_string(&path) {
        Ok(s) => Some(serde_json::from_str(&s).with_context(|| format!("{} is corrupt; delete it to get new keys", path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // Unreadable is not absent: making new keys would overwrite the file.
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let needs_keys = config.keys.is_empty();
    if !needs_keys && config.crm_secret.is_some() {
        return Ok(config);
    }
    let saved = match saved {
        Some(s) => {
            if needs_keys {
                println!("ember dev: using the keys made on the first start (hashes in {}); delete that file for a new pair", path.display());
            }
            s
        }
        None => {
            let write = new_key(KeyKind::Write);
            let admin = new_key(KeyKind::Admin);
            let crm_secret = format!("whsec_{}", {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            });
            let keys = DevKeys { write: entry(&write, &["*".into()]), admin: hash_entry(&admin), crm_secret };
            std::fs::write(&path, serde_json::to_string_pretty(&keys)?).with_context(|| format!("writing {}", path.display()))?;
            if needs_keys {
                println!("ember dev: no EMBER_WRITE_KEYS / EMBER_ADMIN_KEYS set, so here is a fresh pair (shown once):");
                println!("  write key (ingest, any origin): {write}");
                println!("  admin key (everything else):     {admin}");
                println!("  their hashes are kept in {}; `ember keys new` makes keys for production", path.display());
            }
            keys
        }
    };
    if needs_keys {
        config.keys = ApiKeys::parse(&saved.write, &saved.admin).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if config.crm_secret.is_none() {
        ember_service::signing::secret_key(&saved.crm_secret).map_err(|_| {
            anyhow::anyhow!("{}: crm_secret must be a Standard Webhooks secret (`whsec_` followed by base64)", path.display())
        })?;
        config.crm_secret = Some(saved.crm_secret);
    }
    Ok(config)
}
