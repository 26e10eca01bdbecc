//! Sending a planned commit: one `TransactWriteItems` (retried with backoff and a fresh
//! request token on throttling and transaction conflicts, never on a failed condition, its
//! cancellation reasons mapped to [`StoreError::Conflict`] / [`StoreError::Duplicate`]), or,
//! for the lead's update alone, one conditional `UpdateItem`; and the identity moves ahead of
//! a merge too large for one transaction.

use super::plan::{self, Planned, Role, Target};
use crate::metrics::write_units;
use crate::retry::backoff;
use crate::{DynamoStore, sdk_err};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, TransactWriteItem};
use ember_service::ports::StoreError;

/// Attempts at one transaction when DynamoDB throttles it or reports a transaction conflict.
const ATTEMPTS: u32 = 4;

impl DynamoStore {
    /// Sends the main transaction of a commit: a plan of the lead's update alone (a scheduled
    /// job's commit, a seeded lead) as one conditional `UpdateItem` — as atomic as a one-item
    /// transaction, at half the write units — anything else as a transaction.
    pub(super) async fn execute(&self, mut plan: Vec<Planned>) -> Result<(), StoreError> {
        if plan.len() == 1 && matches!(plan[0].role, Role::Lead) {
            self.update_alone(plan.remove(0)).await
        } else {
            self.transact(plan).await
        }
    }

    /// Points `keys` (owned by `rid`, or already by `id`) at `id`, in the transactions of
    /// [`plan::identity_move`]. Used ahead of a merge's main transaction when it would be too
    /// large; not atomic with it: if the merge then fails, the moved identities already point
    /// at the survivor (which exists), and a retried merge accepts them there.
    pub(super) async fn move_identities(
        &self,
        t: &Target<'_>,
        (id, ev): (&str, u64),
        (rid, rv): (&str, u64),
        keys: &[String],
    ) -> Result<(), StoreError> {
        for transaction in plan::identity_move(t, id, ev, rid, rv, keys)? {
            self.transact(transaction).await?;
        }
        Ok(())
    }

    /// The lead's update on its own: the planned transaction item as a conditional `UpdateItem`,
    /// retried on transaction conflicts (the SDK retries throttling), never on a failed condition.
    async fn update_alone(&self, planned: Planned) -> Result<(), StoreError> {
        let units = write_units(planned.bytes, false);
        let Some(u) = planned.item.update else {
            return Err(StoreError::Other("dynamodb: a lead commit without its update".into()));
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .update_item()
                .table_name(u.table_name.clone())
                .set_key(Some(u.key.clone()))
                .update_expression(u.update_expression.clone())
                .set_condition_expression(u.condition_expression.clone())
                .set_expression_attribute_names(u.expression_attribute_names.clone())
                .set_expression_attribute_values(u.expression_attribute_values.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    self.metrics.write(out.consumed_capacity());
                    self.metrics.estimate_write(units);
                    return Ok(());
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                        return Err(StoreError::Conflict("the lead changed (version check failed)".into()));
                    }
                    // The lead is inside another request's transaction: like a transaction
                    // conflict, retried after a pause.
                    Some(UpdateItemError::TransactionConflictException(_)) if attempt < ATTEMPTS => {
                        tracing::debug!(attempt, "dynamodb update met a transaction; retried");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Some(UpdateItemError::TransactionConflictException(_)) => {
                        return Err(StoreError::Conflict(format!(
                            "the lead is being changed by other requests (transaction conflict, {attempt} attempts)"
                        )));
                    }
                    _ => return Err(sdk_err("UpdateItem", e)),
                },
            }
        }
    }

    /// Runs one transaction: retried on throttling and transaction conflicts (with backoff and
    /// a new request token: nothing was written), never on a failed condition.
    async fn transact(&self, plan: Vec<Planned>) -> Result<(), StoreError> {
        let units: u64 = plan.iter().map(|p| write_units(p.bytes, true)).sum();
        let counter_units: u64 =
            plan.iter().filter(|p| matches!(p.role, Role::Counter)).map(|p| write_units(p.bytes, true)).sum();
        let roles: Vec<Role> = plan.iter().map(|p| p.role.clone()).collect();
        let items: Vec<TransactWriteItem> = plan.into_iter().map(|p| p.item).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The token makes the SDK's own retries (after a lost response) idempotent.
            let token = uuid::Uuid::new_v4().simple().to_string();
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(token)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    for c in out.consumed_capacity() {
                        self.metrics.write(Some(c));
                    }
                    self.metrics.estimate_write(units);
                    self.metrics.estimate_counter_write(counter_units);
                    return Ok(());
                }
                Err(e) => match classify(e, &roles) {
                    Verdict::Fail(err) => return Err(err),
                    Verdict::Retry(err) => {
                        if attempt >= ATTEMPTS {
                            return Err(err);
                        }
                        tracing::debug!(attempt, error = %err, "dynamodb transaction retried");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                },
            }
        }
    }
}

enum Verdict {
    Fail(StoreError),
    Retry(StoreError),
}

/// Maps a failed transaction. With several failed conditions, the lead's own version wins
/// (as in the embedded store: it is checked first), then duplicates, then the rest.
fn classify<R: std::fmt::Debug>(e: SdkError<TransactWriteItemsError, R>, roles: &[Role]) -> Verdict {
    let service = match &e {
        SdkError::ServiceError(se) => se.err(),
        // Timeouts and connection failures the SDK already retried: the request token makes a
        // retry safe, but a definitive answer is better left to the caller.
        _ => return Verdict::Fail(sdk_err("TransactWriteItems", e)),
    };
    match service {
        TransactWriteItemsError::TransactionCanceledException(tc) => {
            let codes: Vec<&str> = tc.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            let failed = |pred: &dyn Fn(&Role) -> bool| {
                codes
                    .iter()
                    .zip(roles)
                    .find(|(c, r)| **c == "ConditionalCheckFailed" && pred(r))
                    .map(|(_, r)| r.clone())
            };
            if failed(&|r| matches!(r, Role::Lead)).is_some() {
                return Verdict::Fail(StoreError::Conflict("the lead changed (version check failed)".into()));
            }
            if let Some(Role::Dedupe(id)) = failed(&|r| matches!(r, Role::Dedupe(_))) {
                return Verdict::Fail(StoreError::Duplicate(id));
            }
            if failed(&|r| matches!(r, Role::Retire)).is_some() {
                return Verdict::Fail(StoreError::Conflict("the retired lead changed (version check failed)".into()));
            }
            if failed(&|r| matches!(r, Role::Release)).is_some() {
                return Verdict::Fail(StoreError::Conflict(
                    "the lead giving up an identity changed (version check failed)".into(),
                ));
            }
            if failed(&|r| matches!(r, Role::Identity | Role::Event)).is_some() {
                return Verdict::Fail(StoreError::Conflict(
                    "an identity is owned by another lead (claim failed)".into(),
                ));
            }
            let summary = codes.iter().filter(|c| **c != "None").copied().collect::<Vec<_>>().join(", ");
            if codes.contains(&"TransactionConflict") {
                return Verdict::Retry(StoreError::Conflict(format!(
                    "concurrent transaction on the same items ({summary})"
                )));
            }
            if codes
                .iter()
                .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"))
            {
                return Verdict::Retry(StoreError::Other(format!("dynamodb: transaction throttled ({summary})")));
            }
            Verdict::Fail(StoreError::Other(format!("dynamodb: transaction canceled ({summary})")))
        }
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_)
        | TransactWriteItemsError::InternalServerError(_) => Verdict::Retry(StoreError::Other(format!(
            "dynamodb TransactWriteItems: {}",
            service.code().unwrap_or("error")
        ))),
        _ => Verdict::Fail(sdk_err("TransactWriteItems", e)),
    }
}
