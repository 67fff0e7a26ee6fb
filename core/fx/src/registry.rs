//! The dataset plugin registry: plugin name → constructor. Phantom plugins are linked statically;
//! the contract (fx-plugin) is C-ABI-ready for dynamically loaded ones.

use crate::config::DatasetConfig;
use anyhow::{anyhow, bail, Result};
use fx_plugin::{Dataset, DatasetSpec, PluginEntry};
use std::sync::Arc;

pub struct Registry {
    entries: Vec<PluginEntry>,
}

impl Registry {
    pub fn new(entries: Vec<PluginEntry>) -> Registry {
        Registry { entries }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    pub fn entries(&self) -> &[PluginEntry] {
        &self.entries
    }

    /// Opens a dataset of an experiment. Errors name the experiment file and the dataset.
    pub fn open(&self, file: &str, index: usize, cfg: &DatasetConfig) -> Result<Arc<dyn Dataset>> {
        let place = format!("{file}: datasets[{index}] ({})", cfg.name());
        let name = cfg.name();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("{place}: the name `{name}` may only use letters, digits, '-' and '_' (it names heads and files)");
        }
        let entry = self.entries.iter().find(|e| e.name == cfg.plugin).ok_or_else(|| {
            let close = self
                .names()
                .into_iter()
                .map(|n| (strsim::damerau_levenshtein(n, &cfg.plugin), n))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            anyhow!("{place}: unknown plugin `{}`{close}; available: {}", cfg.plugin, self.names().join(", "))
        })?;
        if let Some(root) = &cfg.root {
            if !root.is_dir() {
                bail!("{place}: the dataset root {} does not exist or is not a folder", root.display());
            }
        }
        let options = serde_json::to_value(&cfg.options)?;
        let spec = DatasetSpec { name: name.to_string(), plugin: cfg.plugin.clone(), root: cfg.root.clone(), options };
        let ds = (entry.open)(&spec).map_err(|e| anyhow!("{place}: {e}"))?;
        Ok(Arc::from(ds))
    }
}
