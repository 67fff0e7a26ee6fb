//! Host side of dynamically loaded dataset plugins (libloading): a library exporting the C ABI of
//! `fx_plugin::abi`, and its datasets as ordinary `Dataset`s. The library stays loaded as long as a
//! dataset of it lives.

use anyhow::{anyhow, bail, Result};
use fx_plugin::abi::{error_from_json, unframe};
use fx_plugin::{Dataset, DatasetDesc, DatasetSpec, LabeledBox, PluginError, Sample, SampleRecord, Split, ABI_VERSION};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type CallFn = unsafe extern "C" fn(*const u8, usize, *mut usize) -> *mut u8;
type FreeFn = unsafe extern "C" fn(*mut u8, usize);

pub struct Library {
    path: PathBuf,
    call: CallFn,
    free: FreeFn,
    // Last: the function pointers above point into it.
    _lib: libloading::Library,
}

impl Library {
    /// Loads a plugin library and checks that it speaks this fx's plugin ABI.
    pub fn open(path: &Path) -> Result<Arc<Library>> {
        // dlopen reads a bare file name as "search the system library path": make it a path.
        let local;
        let path = if path.components().count() == 1 {
            local = Path::new(".").join(path);
            local.as_path()
        } else {
            path
        };
        let p = path.display();
        if !path.is_file() {
            bail!("{p}: no such plugin library");
        }
        // SAFETY: loading runs the library's initialisers; a plugin is code the user chose to run.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| anyhow!("{p}: cannot load it as a shared library: {e}"))?;
        let version = unsafe { lib.get::<unsafe extern "C" fn() -> u32>(b"fx_plugin_abi_version\0") }
            .map_err(|_| anyhow!("{p}: not an fx plugin (it exports no fx_plugin_abi_version; build it with fx_plugin::export_plugins!)"))?;
        let v = unsafe { version() };
        if v != ABI_VERSION {
            bail!("{p}: built against fx plugin ABI {v}, this fx speaks ABI {ABI_VERSION}; rebuild the plugin against this fx-plugin");
        }
        let call = *unsafe { lib.get::<CallFn>(b"fx_plugin_call\0") }.map_err(|_| anyhow!("{p}: fx plugin without fx_plugin_call"))?;
        let free = *unsafe { lib.get::<FreeFn>(b"fx_plugin_free\0") }.map_err(|_| anyhow!("{p}: fx plugin without fx_plugin_free"))?;
        Ok(Arc::new(Library { path: path.to_path_buf(), call, free, _lib: lib }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One request; `Ok((header, payload))` or the plugin's error.
    fn call(&self, req: &Value) -> std::result::Result<(Value, Vec<u8>), PluginError> {
        let bytes = req.to_string().into_bytes();
        let mut len = 0usize;
        // SAFETY: the ABI: request bytes in, a response this library allocated out, freed below.
        let ptr = unsafe { (self.call)(bytes.as_ptr(), bytes.len(), &mut len) };
        if ptr.is_null() {
            return Err(PluginError::config("", format!("{}: the plugin returned no response", self.path.display())));
        }
        let owned = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
        unsafe { (self.free)(ptr, len) };
        let (ok, header, payload) =
            unframe(&owned).map_err(|e| PluginError::config("", format!("{}: {e}", self.path.display())))?;
        if ok {
            Ok((header, payload.to_vec()))
        } else {
            Err(error_from_json(&header))
        }
    }

    /// The plugins the library offers: (name, summary).
    pub fn entries(&self) -> Result<Vec<(String, String)>> {
        let (v, _) = self.call(&json!({ "op": "list" })).map_err(|e| anyhow!("{}: listing its plugins: {e}", self.path.display()))?;
        Ok(v.as_array()
            .map(|a| a.iter().map(|e| (e["name"].as_str().unwrap_or("").to_string(), e["summary"].as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default())
    }
}

/// A dataset served by a plugin library.
pub struct DynDataset {
    lib: Arc<Library>,
    handle: u64,
    desc: DatasetDesc,
}

impl DynDataset {
    pub fn open(lib: Arc<Library>, plugin: &str, spec: &DatasetSpec) -> std::result::Result<DynDataset, PluginError> {
        let (h, _) = lib.call(&json!({ "op": "open", "plugin": plugin, "spec": spec }))?;
        let handle = h["handle"].as_u64().ok_or_else(|| PluginError::config(&spec.name, "the plugin returned no handle"))?;
        let (d, _) = lib.call(&json!({ "op": "desc", "handle": handle }))?;
        let desc: DatasetDesc =
            serde_json::from_value(d).map_err(|e| PluginError::config(&spec.name, format!("the plugin's description does not parse: {e}")))?;
        Ok(DynDataset { lib, handle, desc })
    }
}

impl Dataset for DynDataset {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> std::result::Result<Vec<SampleRecord>, PluginError> {
        let (v, _) = self.lib.call(&json!({ "op": "index", "handle": self.handle, "split": split }))?;
        serde_json::from_value(v).map_err(|e| PluginError::config(&self.desc.name, format!("the plugin's index does not parse: {e}")))
    }

    fn load(&self, record: &SampleRecord, size_hint: usize) -> std::result::Result<Sample, PluginError> {
        let (h, payload) = self.lib.call(&json!({ "op": "load", "handle": self.handle, "record": record, "size_hint": size_hint }))?;
        let bad = |what: &str| PluginError::input(format!("plugin {}", self.lib.path.display()), format!("sample {}: {what}", record.id));
        let (height, width) = (h["height"].as_u64().ok_or_else(|| bad("no height"))? as usize, h["width"].as_u64().ok_or_else(|| bad("no width"))? as usize);
        let masks = h["masks"].as_u64().unwrap_or(0) as usize;
        let image_dims: Option<(usize, usize)> = serde_json::from_value(h["image_dims"].clone()).map_err(|_| bad("bad image_dims"))?;
        let px = height * width;
        let ipx = image_dims.map(|(w, h)| w * h).unwrap_or(px);
        if payload.len() != ipx * 4 + masks * px {
            return Err(bad(&format!("{} payload bytes for a {width}×{height} image with {masks} mask(s)", payload.len())));
        }
        let image = payload[..ipx * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let masks = (0..masks).map(|k| payload[ipx * 4 + k * px..ipx * 4 + (k + 1) * px].to_vec()).collect();
        let cls: Vec<f32> = serde_json::from_value(h["cls"].clone()).map_err(|_| bad("bad cls labels"))?;
        let boxes: Vec<LabeledBox> = serde_json::from_value(h["boxes"].clone()).map_err(|_| bad("bad boxes"))?;
        let warnings: Vec<String> = serde_json::from_value(h["warnings"].clone()).unwrap_or_default();
        Ok(Sample { id: h["id"].as_str().unwrap_or(&record.id).to_string(), height, width, image, image_dims, cls, boxes, masks, warnings })
    }

    fn warnings(&self) -> Vec<String> {
        self.lib
            .call(&json!({ "op": "warnings", "handle": self.handle }))
            .ok()
            .and_then(|(v, _)| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
}

impl Drop for DynDataset {
    fn drop(&mut self) {
        let _ = self.lib.call(&json!({ "op": "close", "handle": self.handle }));
    }
}
