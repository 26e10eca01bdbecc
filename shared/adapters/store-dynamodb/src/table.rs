//! Table creation (tests, `ember` set-up commands, local endpoints). Production tables come from
//! the infrastructure templates with the same definition: [`table_definition`] is data, and a
//! unit test compares it with the table `infra/template.yaml` declares.

use crate::keys::{ALL_DUE, EXPIRES_AT, PK, SK};
use crate::sdk_err;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use ember_service::ports::StoreError;
use std::time::Duration;

/// How long [`create_table`] waits for the table to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// The table as [`create_table`] makes it, and as `infra/template.yaml` declares it for
/// production (the `template_tests` module checks that the two agree).
#[derive(Debug)]
pub(crate) struct TableDefinition {
    /// `PK` hash, `SK` range.
    pub key_schema: Vec<KeySchemaElement>,
    /// Every key attribute of the table and its indexes, all strings.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// The sparse due indexes, one per due kind.
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    pub billing_mode: BillingMode,
    /// `None`: the table has no stream.
    pub stream: Option<StreamSpecification>,
    /// The attribute DynamoDB's TTL deletes items by.
    pub ttl_attribute: String,
}

/// Ember's table: `PK`/`SK` strings, on-demand billing, no stream, the three sparse due indexes
/// (`decay_due`, `drip_due`, `sla_due`: `<kind>_shard` hash, `<kind>_at` range, keys only) and
/// TTL on `expires_at`.
pub(crate) fn table_definition() -> Result<TableDefinition, StoreError> {
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
    let mut def = TableDefinition {
        key_schema: vec![key(PK, KeyType::Hash)?, key(SK, KeyType::Range)?],
        attribute_definitions: vec![attr(PK)?, attr(SK)?],
        global_secondary_indexes: Vec::new(),
        billing_mode: BillingMode::PayPerRequest,
        stream: None,
        ttl_attribute: EXPIRES_AT.to_owned(),
    };
    for (_, names) in ALL_DUE {
        def.attribute_definitions.push(attr(names.shard)?);
        def.attribute_definitions.push(attr(names.at)?);
        def.global_secondary_indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(names.index)
                .key_schema(key(names.shard, KeyType::Hash)?)
                .key_schema(key(names.at, KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .map_err(build_err)?,
        );
    }
    Ok(def)
}

/// Creates the Ember table `name` ([`table_definition`]) if it does not exist. Idempotent: an
/// existing table is fine (its definition is not checked), and TTL is enabled if it is not yet.
/// Waits until the table is `ACTIVE`. Returns whether it created the table.
pub async fn create_table(client: &Client, name: &str) -> Result<bool, StoreError> {
    let def = table_definition()?;
    let req = client
        .create_table()
        .table_name(name)
        .billing_mode(def.billing_mode)
        .set_key_schema(Some(def.key_schema))
        .set_attribute_definitions(Some(def.attribute_definitions))
        .set_global_secondary_indexes(Some(def.global_secondary_indexes))
        .set_stream_specification(def.stream);
    let created = match req.send().await {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceInUseException") => false,
        Err(e) => return Err(sdk_err("CreateTable", e)),
    };
    wait_active(client, name).await?;
    enable_ttl(client, name, &def.ttl_attribute).await?;
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

async fn enable_ttl(client: &Client, name: &str, attribute: &str) -> Result<(), StoreError> {
    let current =
        client.describe_time_to_live().table_name(name).send().await.map_err(|e| sdk_err("DescribeTimeToLive", e))?;
    if let Some(d) = current.time_to_live_description()
        && matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
    {
        if d.attribute_name() != Some(attribute) {
            tracing::warn!(table = name, "table has TTL on another attribute; event retention will not apply");
        }
        return Ok(());
    }
    let spec =
        TimeToLiveSpecification::builder().enabled(true).attribute_name(attribute).build().map_err(build_err)?;
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

#[cfg(test)]
mod template_tests;
