//! The `api` function: the HTTP API behind API Gateway (see `ember_lambda::http`).

fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::main(ember_lambda::serve::http)
}
