//! The `feedback` function: SES events from EventBridge (see `ember_lambda::ses_events`).

fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::main(ember_lambda::serve::feedback)
}
