//! `node21`: STUB — the plugin is being written; opening it is an error.

use fx_data::dataset::FileDataset;
use fx_plugin::{DatasetSpec, PluginEntry, PluginError};

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    Err(PluginError::config(&spec.name, "the node21 plugin is not written yet"))
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry { name: "node21", summary: "(not written yet)", open: |spec| Ok(Box::new(open(spec)?)) }]
}

fx_plugin::export_plugins!(plugins);
