//! What a model file names but does not hold (template bodies kept in files beside it, `${NAME}`
//! settings in webhook URLs and secrets) reaches the loader through [`ModelSources`], so the
//! loader reads no file and no environment itself. The application layer
//! (`ember_service::model_files`) answers from the model's folder and the process environment or a
//! function's secret; [`NoSources`] and [`MemorySources`] answer from nothing and from maps.

use std::collections::BTreeMap;

/// Where the loader gets what the model file refers to but does not contain.
pub trait ModelSources {
    /// The text of the file a template body names, as written in the model (`emails/welcome.hbs`,
    /// relative to the model), or where it was looked for and why it cannot be read.
    fn file(&self, name: &str) -> Result<String, Unreadable>;
    /// The value of the setting a `${NAME}` reference names; `None` when it is not set.
    fn setting(&self, name: &str) -> Option<String>;
}

/// A file named by the model that could not be read. The loader reports it as
/// "template file {at} cannot be read: {reason}".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Where the file was looked for, as messages show it (`models/emails/welcome.hbs`).
    pub at: String,
    /// Why it could not be read (`No such file or directory (os error 2)`).
    pub reason: String,
}

/// Nothing beyond the text itself: every named file is unreadable and every setting unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSources;

impl ModelSources for NoSources {
    fn file(&self, name: &str) -> Result<String, Unreadable> {
        Err(Unreadable { at: name.to_string(), reason: "the model was given as text, with no folder to read files from".into() })
    }
    fn setting(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Files (keyed by the name the model writes) and settings held in maps: tests, fuzzing, models
/// kept somewhere other than a folder.
#[derive(Debug, Clone, Default)]
pub struct MemorySources {
    /// File texts by the name a template body gives (`emails/welcome.hbs`).
    pub files: BTreeMap<String, String>,
    /// Setting values by name (`CRM_WEBHOOK_URL`).
    pub settings: BTreeMap<String, String>,
}

impl ModelSources for MemorySources {
    fn file(&self, name: &str) -> Result<String, Unreadable> {
        self.files.get(name).cloned().ok_or_else(|| Unreadable { at: name.to_string(), reason: "no such file".into() })
    }
    fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name).cloned()
    }
}
