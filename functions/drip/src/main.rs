//! The `drip` function: EventBridge Scheduler runs (see `ember_lambda::schedule`).

fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::main(ember_lambda::serve::scheduled)
}
