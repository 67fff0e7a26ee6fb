//! The dataset plugin registry: plugin name → constructor. The phantom and file plugins are linked
//! statically; plugin libraries (`plugins = [...]` in an experiment) are loaded with libloading
//! through the C ABI of `fx_plugin::abi`.

use crate::config::DatasetConfig;
use crate::dynlib::{DynDataset, Isolation, Library};
use anyhow::{anyhow, bail, Result};
use fx_plugin::{Dataset, DatasetSpec, PluginEntry};
use std::path::{Path, PathBuf};

/// Where plugin libraries are found without a `plugins = [...]` line: the folder of the running
/// executable (where `cargo build` puts the workspace's plugin libraries beside fx-tui), then each
/// folder of `FX_PLUGIN_PATH` (':'-separated).
pub fn plugin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)).into_iter().collect();
    if let Some(p) = std::env::var_os("FX_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}
use std::sync::Arc;

#[derive(Clone)]
enum Source {
    Static(PluginEntry),
    Library { name: String, summary: String, lib: Arc<Library> },
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::Static(e) => e.name,
            Source::Library { name, .. } => name,
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    entries: Vec<Source>,
    /// Which process runs the code of the libraries loaded from now on.
    pub isolation: Isolation,
}

impl Registry {
    pub fn new(entries: Vec<PluginEntry>) -> Registry {
        Registry { entries: entries.into_iter().map(Source::Static).collect(), isolation: Isolation::Auto }
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name().to_string()).collect()
    }

    /// (name, summary, where from) of every plugin.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        self.entries
            .iter()
            .map(|e| match e {
                Source::Static(p) => (p.name.to_string(), p.summary.to_string(), "built in".to_string()),
                Source::Library { name, summary, lib } => {
                    (name.clone(), summary.clone(), lib.path().display().to_string())
                }
            })
            .collect()
    }

    /// The library that provides `plugin`, when a library does (not a built-in plugin).
    pub fn library_of(&self, plugin: &str) -> Option<&Path> {
        self.entries.iter().find_map(|e| match e {
            Source::Library { name, lib, .. } if name == plugin => Some(lib.path()),
            _ => None,
        })
    }

    /// Loads a plugin library and adds its plugins; a name already taken is an error. The same
    /// file loaded twice (discovered and also listed by an experiment) is loaded once.
    pub fn load_library(&mut self, path: &Path) -> Result<Vec<String>> {
        let same =
            |p: &Path| std::fs::canonicalize(p).ok().is_some_and(|c| Some(c) == std::fs::canonicalize(path).ok());
        let already: Vec<String> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Source::Library { name, lib, .. } if same(lib.path()) => Some(name.clone()),
                _ => None,
            })
            .collect();
        // Loaded in process before (discovered beside fx-tui) but asked for in a child process
        // now: serve it from a child from here on.
        let in_process_but_isolation_asked = self.isolation == Isolation::Process
            && self
                .entries
                .iter()
                .any(|e| matches!(e, Source::Library { lib, .. } if same(lib.path()) && !lib.isolated()));
        if in_process_but_isolation_asked {
            self.entries.retain(|e| !matches!(e, Source::Library { lib, .. } if same(lib.path())));
        } else if !already.is_empty() {
            return Ok(already);
        }
        // A library of heads only (fx_head::export_heads!) offers no datasets; its heads are
        // checked and loaded here, and found by `[datasets.heads.*] plugin`.
        if crate::head_plugin::is_heads_only(path) {
            crate::head_plugin::open(path)?;
            return Ok(Vec::new());
        }
        let lib = Library::open_isolated(path, self.isolation)?;
        let mut added = Vec::new();
        for (name, summary) in lib.entries()? {
            if self.entries.iter().any(|e| e.name() == name) {
                bail!("{}: plugin `{name}` is already registered (built in or by another library)", path.display());
            }
            added.push(name.clone());
            self.entries.push(Source::Library { name, summary, lib: lib.clone() });
        }
        if added.is_empty() {
            bail!("{}: the library offers no plugin", path.display());
        }
        Ok(added)
    }

    /// Loads every plugin library (`libfx_*.so`) found in `dirs`, in name order; returns one
    /// warning per library that could not be loaded (the others stay usable).
    pub fn discover(&mut self, dirs: &[PathBuf]) -> Vec<String> {
        let mut warnings = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut libs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.starts_with("libfx_") && (n.ends_with(".so") || n.ends_with(".dylib"))
                })
                .collect();
            libs.sort();
            for lib in libs {
                if let Err(e) = self.load_library(&lib) {
                    warnings.push(format!("plugin library not loaded: {e:#}"));
                }
            }
        }
        warnings
    }

    /// This registry plus the experiment's plugin libraries.
    pub fn with_libraries(&self, file: &str, libraries: &[std::path::PathBuf]) -> Result<Registry> {
        let mut r = self.clone();
        for (i, path) in libraries.iter().enumerate() {
            r.load_library(path).map_err(|e| anyhow!("{file}: plugins[{i}]: {e:#}"))?;
        }
        Ok(r)
    }

    /// Opens a dataset of an experiment. Errors name the experiment file and the dataset.
    pub fn open(
        &self,
        file: &str,
        index: usize,
        cfg: &DatasetConfig,
        cache: Option<&fx_plugin::CacheSpec>,
    ) -> Result<Arc<dyn Dataset>> {
        let place = format!("{file}: datasets[{index}] ({})", cfg.name());
        let name = cfg.name();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("{place}: the name `{name}` may only use letters, digits, '-' and '_' (it names heads and files)");
        }
        let entry = self.entries.iter().find(|e| e.name() == cfg.plugin).ok_or_else(|| {
            let names = self.names();
            let close = names
                .iter()
                .map(|n| (strsim::damerau_levenshtein(n, &cfg.plugin), n))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            anyhow!("{place}: unknown plugin `{}`{close}; available: {}", cfg.plugin, names.join(", "))
        })?;
        if let Some(root) = &cfg.root {
            if !root.is_dir() {
                bail!("{place}: the dataset root {} does not exist or is not a folder", root.display());
            }
        }
        let options = serde_json::to_value(&cfg.options)?;
        let spec = DatasetSpec {
            name: name.to_string(),
            plugin: cfg.plugin.clone(),
            root: cfg.root.clone(),
            options,
            cache: cache.cloned(),
        };
        match entry {
            Source::Static(e) => Ok(Arc::from((e.open)(&spec).map_err(|e| anyhow!("{place}: {e}"))?)),
            Source::Library { name, lib, .. } => {
                Ok(Arc::new(DynDataset::open(lib.clone(), name, &spec).map_err(|e| anyhow!("{place}: {e}"))?))
            }
        }
    }
}
