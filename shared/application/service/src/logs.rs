//! The one log setup of every binary (the Lambda functions and the `ember` CLI), so the rule
//! that keeps people's data out of the logs is written once: Handlebars logs the data it
//! renders (names, emails) at debug level, and that target never goes below `warn`, whatever
//! `RUST_LOG` asks for.

use tracing_subscriber::EnvFilter;

/// How the logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// A Lambda function: JSON lines without colours, timestamps left to CloudWatch.
    Function,
    /// A long-running command (`ember dev`): JSON when `EMBER_LOG_FORMAT=json`, else
    /// human-readable, on stderr.
    Terminal,
    /// A batch command: like [`LogStyle::Terminal`], but warnings and errors only unless
    /// `RUST_LOG` says otherwise.
    Quiet,
}

/// The filter: `RUST_LOG`, else `default`, with template rendering held at `warn`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default))
        .add_directive("handlebars=warn".parse().expect("a valid directive"))
}

/// Installs the process's logger (once: a second call changes nothing).
pub fn init(style: LogStyle) {
    match style {
        LogStyle::Function => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter("info"))
                .with_ansi(false)
                .without_time()
                .with_current_span(false)
                .try_init();
        }
        LogStyle::Terminal | LogStyle::Quiet => {
            let default = if style == LogStyle::Quiet { "warn" } else { "info" };
            let json = std::env::var("EMBER_LOG_FORMAT").is_ok_and(|v| v == "json");
            let builder = tracing_subscriber::fmt().with_env_filter(filter(default)).with_writer(std::io::stderr);
            let _ = if json { builder.json().try_init() } else { builder.try_init() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_rendering_stays_at_warn_even_when_everything_else_is_traced() {
        // SAFETY: this test alone in the crate touches RUST_LOG.
        unsafe { std::env::set_var("RUST_LOG", "trace") };
        let f = filter("info").to_string();
        unsafe { std::env::remove_var("RUST_LOG") };
        assert!(f.contains("handlebars=warn"), "{f}");
        assert!(f.contains("trace"), "{f}");
    }
}
