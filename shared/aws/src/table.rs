//! Table creation (tests, `ember` set-up commands, local endpoints). Production tables come from
//! the infrastructure templates with the same definition.

use crate::keys::{ALL_DUE, EXPIRES_AT, PK, SK};
use crate::sdk_err;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use ember_service::ports::StoreError;
use std::time::Duration;

/// How long [`create_table`] waits for the table to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Creates the Ember table `name` if it does not exist: `PK`/`SK` strings, on-demand billing,
/// the three sparse due indexes (`decay_due`, `drip_due`, `sla_due`: `<kind>_shard` hash,
/// `<kind>_at` range, keys only) and TTL on `expires_at`. Idempotent: an existing table is
/// fine (its definition is not checked), and TTL is enabled if it is not yet. Waits until the
/// table is `ACTIVE`. Returns whether it created the table.
pub async fn create_table(client: &Client, name: &str) -> Result<bool, StoreError> {
    let key = |attr: &str, kind: KeyType| {
        KeySchemaElement::builder().attribute_name(attr).key_type(kind).build().map_err(build_err)
    };
    let attr = |attr: &str| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_err)
    };
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?);
    for (_, names) in ALL_DUE {
        req = req
            .attribute_definitions(attr(names.shard)?)
            .attribute_definitions(attr(names.at)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(names.index)
                    .key_schema(key(names.shard, KeyType::Hash)?)
                    .key_schema(key(names.at, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                    .build()
                    .map_err(build_err)?,
            );
    }
    let created = match req.send().await {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceInUseException") => false,
        Err(e) => return Err(sdk_err("CreateTable", e)),
    };
    wait_active(client, name).await?;
    enable_ttl(client, name).await?;
    if created {
        tracing::info!(table = name, "dynamodb table created");
    }
    Ok(created)
}

async fn wait_active(client: &Client, name: &str) -> Result<(), StoreError> {
    let start = std::time::Instant::now();
    loop {
        let out = client.describe_table().table_name(name).send().await.map_err(|e| sdk_err("DescribeTable", e))?;
        let status = out.table().and_then(|t| t.table_status()).cloned();
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if start.elapsed() > ACTIVE_TIMEOUT {
            return Err(StoreError::Other(format!("table {name} is not ACTIVE after {ACTIVE_TIMEOUT:?} ({status:?})")));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn enable_ttl(client: &Client, name: &str) -> Result<(), StoreError> {
    let current =
        client.describe_time_to_live().table_name(name).send().await.map_err(|e| sdk_err("DescribeTimeToLive", e))?;
    if let Some(d) = current.time_to_live_description()
        && matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
    {
        if d.attribute_name() != Some(EXPIRES_AT) {
            tracing::warn!(table = name, "table has TTL on another attribute; event retention will not apply");
        }
        return Ok(());
    }
    let spec =
        TimeToLiveSpecification::builder().enabled(true).attribute_name(EXPIRES_AT).build().map_err(build_err)?;
    match client.update_time_to_live().table_name(name).time_to_live_specification(spec).send().await {
        Ok(_) => Ok(()),
        // A concurrent creator enabled it first.
        Err(e)
            if e.code() == Some("ValidationException")
                && e.message().is_some_and(|m| m.contains("already enabled")) =>
        {
            Ok(())
        }
        Err(e) => Err(sdk_err("UpdateTimeToLive", e)),
    }
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other(format!("dynamodb: building a request: {e}"))
}
