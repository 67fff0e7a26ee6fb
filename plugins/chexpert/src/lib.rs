//! `chexpert`: STUB — the plugin is being written; opening it is an error.

use fx_data::dataset::FileDataset;
use fx_plugin::{DatasetSpec, PluginEntry, PluginError};

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    Err(PluginError::config(&spec.name, "the chexpert plugin is not written yet"))
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry { name: "chexpert", summary: "(not written yet)", open: |spec| Ok(Box::new(open(spec)?)) }]
}

fx_plugin::export_plugins!(plugins);
