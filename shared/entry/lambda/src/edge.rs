//! What a failed invocation tells Lambda: every handler error answers [`Retry`], and
//! [`failed`] turns it into the `errorType` Lambda records (`Retryable` / `NotRetryable`) and
//! one log line (the error and the decision; the runtime's span adds the request id). No
//! error message names a person: they name fields, ids and dependencies.
//!
//! | function | retryable (a dependency failed) | not retryable (the event, or the account) |
//! |---|---|---|
//! | `ingest`, `api` | `503` from `ember-http` (the client retries) | `4xx` from `ember-http` |
//! | `feedback` | the invocation fails: Lambda retries it, then the failed-events queue keeps it | fails too, see below |
//! | `handoff` | the same (a webhook kept nowhere: neither the CRM nor the dead-letter queue took it) | fails too, see below |
//! | `decay`, `drip` | a lead that fails stays due: the run succeeds and the next run takes it | SES refuses to send for the account: the run fails so that the error alarm fires |
//!
//! The EventBridge rules and the Scheduler invoke these functions asynchronously: Lambda retries
//! a failed invocation a bounded number of times and then puts it on the failed-events queue,
//! whose alarm tells an operator. A malformed SES event or bus message also fails, rather than
//! being acknowledged: acknowledged, it would be gone (a bounce or a complaint lost leaves an
//! address unsuppressed), failed, it waits in that queue for a person, marked `NotRetryable`.

use ember_service::ServiceError;
use lambda_runtime::Diagnostic;

/// Whether the same invocation could succeed if it ran again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A dependency (the store, the bus, the dead-letter queue) failed or was too busy: the
    /// same event may well succeed later.
    Retryable,
    /// The event cannot be handled (malformed, or refused by the lead's limits), or only an
    /// operator can remove the cause: running it again does the same.
    NotRetryable,
}

impl Retry {
    /// A service failure, as [`ServiceError::is_retryable`] judges it.
    pub fn of_service(e: &ServiceError) -> Retry {
        if e.is_retryable() { Retry::Retryable } else { Retry::NotRetryable }
    }

    /// The `errorType` of a failed invocation.
    pub fn error_type(self) -> &'static str {
        match self {
            Retry::Retryable => "Retryable",
            Retry::NotRetryable => "NotRetryable",
        }
    }
}

/// A failed invocation of `function`, logged once and reported to Lambda.
pub fn failed(function: &'static str, retry: Retry, error: &dyn std::error::Error) -> Diagnostic {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Errors that show their cause in their own text (`{0}`) are not repeated.
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    tracing::error!(function, error_type = retry.error_type(), error = %message, "invocation failed");
    Diagnostic { error_type: retry.error_type().into(), error_message: message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_service::ports::StoreError;

    #[test]
    fn store_trouble_is_retried_bad_input_is_not() {
        assert_eq!(Retry::of_service(&ServiceError::Store(StoreError::Other("throttled".into()))), Retry::Retryable);
        assert_eq!(Retry::of_service(&ServiceError::Contention(16)), Retry::Retryable);
        assert_eq!(Retry::of_service(&ServiceError::Invalid("`type` is missing".into())), Retry::NotRetryable);
        assert_eq!(Retry::of_service(&ServiceError::BatchTooLarge(101)), Retry::NotRetryable);
        assert_eq!(Retry::of_service(&ServiceError::Store(StoreError::Duplicate("ev_1".into()))), Retry::NotRetryable);
        let d = failed("feedback", Retry::NotRetryable, &ServiceError::Invalid("`type` is missing".into()));
        assert_eq!((d.error_type.as_str(), d.error_message.as_str()), ("NotRetryable", "`type` is missing"));
    }
}
