//! The table [`create_table`](super::create_table) makes on moto or DynamoDB is the table
//! `infra/template.yaml` declares: the same keys, attribute definitions, indexes (name, keys,
//! projection), TTL attribute, billing mode and stream. The CDK app is held to the template by
//! `infra/check/equivalence.py`, so this covers all three. No AWS call: the definition is data.

use super::{TableDefinition, table_definition};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use serde_norway::{Mapping, Value};

/// Table properties that only a deployed table has (backups, encryption, deletion guard):
/// moto and local tables do without them, so they are not compared.
const DEPLOYMENT_ONLY: &[&str] = &["PointInTimeRecoverySpecification", "SSESpecification", "DeletionProtectionEnabled"];

/// Properties compared with [`table_definition`]. A property in neither list fails the test.
const COMPARED: &[&str] = &[
    "BillingMode",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "TimeToLiveSpecification",
    "StreamSpecification",
];

/// The properties of the one `AWS::DynamoDB::Table` in the SAM template. Short tags (`!Ref`,
/// `!Sub`, ...) elsewhere in the file parse as tagged values and are never looked at.
fn template_table() -> Mapping {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../infra/template.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let template: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
    let resources = template.get("Resources").and_then(Value::as_mapping).expect("Resources");
    let tables: Vec<&Value> =
        resources.values().filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")).collect();
    assert_eq!(tables.len(), 1, "the template declares one table");
    tables[0].get("Properties").and_then(Value::as_mapping).expect("table Properties").clone()
}

/// `map`'s string at `key`, failing the test on any key outside `known`.
fn field<'a>(map: &'a Value, key: &str, known: &[&str]) -> Option<&'a str> {
    let m = map.as_mapping().unwrap_or_else(|| panic!("expected a mapping, got {map:?}"));
    for k in m.keys() {
        let k = k.as_str().unwrap_or_default();
        assert!(known.contains(&k), "{k} in {map:?}: not compared with table.rs (compare it, or the test is blind to it)");
    }
    m.get(key).map(|v| v.as_str().unwrap_or_else(|| panic!("{key} is not a string: {v:?}")))
}

fn list<'a>(map: &'a Mapping, key: &str) -> &'a [Value] {
    map.get(key).and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default()
}

/// An `{AttributeName, <second>}` mapping's two strings.
fn named_pair<'a>(item: &'a Value, second: &str) -> (&'a str, &'a str) {
    let known = ["AttributeName", second];
    (field(item, "AttributeName", &known).expect("AttributeName"), field(item, second, &known).expect(second))
}

fn key_schema(items: &[Value]) -> Vec<KeySchemaElement> {
    let key = |(name, kind): (&str, &str)| KeySchemaElement::builder().attribute_name(name).key_type(KeyType::from(kind)).build();
    items.iter().map(|k| key(named_pair(k, "KeyType")).expect("key schema element")).collect()
}

/// The template's table as a [`TableDefinition`], lists in a fixed order.
fn declared() -> TableDefinition {
    let table = template_table();
    for k in table.keys() {
        let k = k.as_str().unwrap_or_default();
        assert!(
            COMPARED.contains(&k) || DEPLOYMENT_ONLY.contains(&k),
            "table property {k}: compare it with table.rs, or list it as deployment-only"
        );
    }
    let attr = |(name, kind): (&str, &str)| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::from(kind)).build()
    };
    let attribute_definitions = list(&table, "AttributeDefinitions")
        .iter()
        .map(|a| attr(named_pair(a, "AttributeType")).expect("attribute definition"))
        .collect();
    let global_secondary_indexes = list(&table, "GlobalSecondaryIndexes")
        .iter()
        .map(|i| {
            field(i, "IndexName", &["IndexName", "KeySchema", "Projection"]);
            let projection = i.get("Projection").expect("Projection");
            let non_key: Vec<String> = projection
                .get("NonKeyAttributes")
                .and_then(Value::as_sequence)
                .map(|s| s.iter().map(|v| v.as_str().expect("attribute name").to_owned()).collect())
                .unwrap_or_default();
            let kind = field(projection, "ProjectionType", &["ProjectionType", "NonKeyAttributes"]).expect("ProjectionType");
            GlobalSecondaryIndex::builder()
                .index_name(i.get("IndexName").and_then(Value::as_str).expect("IndexName"))
                .set_key_schema(Some(key_schema(i.get("KeySchema").and_then(Value::as_sequence).expect("index KeySchema"))))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(kind))
                        .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
                        .build(),
                )
                .build()
                .expect("index")
        })
        .collect();
    let ttl = table.get("TimeToLiveSpecification").expect("TimeToLiveSpecification");
    field(ttl, "AttributeName", &["AttributeName", "Enabled"]);
    assert_eq!(ttl.get("Enabled").and_then(Value::as_bool), Some(true), "TTL is enabled");
    let stream = table.get("StreamSpecification").map(|s| {
        let view = field(s, "StreamViewType", &["StreamViewType"]).expect("StreamViewType");
        StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::from(view)).build().expect("stream")
    });
    let ttl_attribute = ttl.get("AttributeName").and_then(Value::as_str).expect("TTL AttributeName");
    sorted(TableDefinition {
        key_schema: key_schema(list(&table, "KeySchema")),
        attribute_definitions,
        global_secondary_indexes,
        billing_mode: BillingMode::from(table.get("BillingMode").and_then(Value::as_str).expect("BillingMode")),
        stream,
        ttl_attribute: ttl_attribute.to_owned(),
    })
}

/// Attribute definitions and indexes sorted by name: their order means nothing to DynamoDB.
fn sorted(mut def: TableDefinition) -> TableDefinition {
    def.attribute_definitions.sort_by(|a, b| a.attribute_name().cmp(b.attribute_name()));
    def.global_secondary_indexes.sort_by(|a, b| a.index_name().cmp(b.index_name()));
    def
}

#[test]
fn created_table_is_the_declared_table() {
    let created = sorted(table_definition().expect("definition"));
    let declared = declared();
    assert_eq!(created.key_schema, declared.key_schema, "key schema");
    assert_eq!(created.attribute_definitions, declared.attribute_definitions, "attribute definitions");
    assert_eq!(created.global_secondary_indexes, declared.global_secondary_indexes, "global secondary indexes");
    assert_eq!(created.billing_mode, declared.billing_mode, "billing mode");
    assert_eq!(created.stream, declared.stream, "stream");
    assert_eq!(created.ttl_attribute, declared.ttl_attribute, "TTL attribute");
}
