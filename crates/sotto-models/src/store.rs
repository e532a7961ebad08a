//! Where models live, and how a `--model` argument becomes a file path.
//!
//! Precedence for the directory: `SOTTO_MODELS`, then `$XDG_DATA_HOME/sotto/models`, then
//! `$HOME/.local/share/sotto/models`. The lookup is a pure function of those values.

use std::path::{Path, PathBuf};

use crate::catalog;

/// The models directory from the given environment values.
pub fn models_dir_from(sotto_models: Option<&str>, xdg_data_home: Option<&str>, home: Option<&str>) -> PathBuf {
    let nonempty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(p) = nonempty(sotto_models) {
        return p;
    }
    if let Some(p) = nonempty(xdg_data_home) {
        return p.join("sotto").join("models");
    }
    nonempty(home).unwrap_or_else(|| PathBuf::from(".")).join(".local/share/sotto/models")
}

/// The models directory for this process's environment.
pub fn models_dir() -> PathBuf {
    let var = |k| std::env::var(k).ok();
    models_dir_from(var("SOTTO_MODELS").as_deref(), var("XDG_DATA_HOME").as_deref(), var("HOME").as_deref())
}

/// Turn a `--model` argument into a path: a catalog id names a file in `dir`; anything else is
/// a path as given. `None` means the default model.
pub fn resolve(arg: Option<&str>, dir: &Path) -> PathBuf {
    let arg = arg.unwrap_or(catalog::DEFAULT_MODEL);
    match catalog::find(arg) {
        Some(spec) => dir.join(spec.file_name),
        None => PathBuf::from(arg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_precedence() {
        assert_eq!(models_dir_from(Some("/m"), Some("/x"), Some("/h")), PathBuf::from("/m"));
        assert_eq!(models_dir_from(None, Some("/x"), Some("/h")), PathBuf::from("/x/sotto/models"));
        assert_eq!(models_dir_from(Some(""), None, Some("/h")), PathBuf::from("/h/.local/share/sotto/models"));
    }

    #[test]
    fn ids_resolve_into_the_directory_and_paths_pass_through() {
        let dir = Path::new("/m");
        assert_eq!(resolve(None, dir), PathBuf::from("/m/gemma-3-270m-q4_k_m.gguf"));
        assert_eq!(resolve(Some("smollm2-135m"), dir), PathBuf::from("/m/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert_eq!(resolve(Some("./x.gguf"), dir), PathBuf::from("./x.gguf"));
    }
}
