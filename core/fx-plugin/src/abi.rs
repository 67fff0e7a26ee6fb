//! The C ABI of a dynamically loaded plugin library: three functions, plain bytes across the
//! boundary, so a plugin built separately (any Rust version, its own allocator) can serve datasets.
//!
//! ```text
//! fx_plugin_abi_version() -> u32                       must equal ABI_VERSION
//! fx_plugin_fingerprint() -> *const c_char              must equal FINGERPRINT (checked next)
//! fx_plugin_call(req, len, *out_len) -> *mut u8         one request, one response
//! fx_plugin_free(ptr, len)                              frees a response
//! ```
//!
//! A request is JSON: `{"op": "list"}`, `{"op": "open", "plugin", "spec"}`, `{"op": "desc" |
//! "index" | "warnings" | "close", "handle", ...}`, `{"op": "load", "handle", "record",
//! "size_hint"}`. A response is a status byte (0 ok, 1 error), a little-endian u32 JSON length, the
//! JSON, then a binary payload (for `load`: the image as f32 LE — `image_dims` when the header
//! gives them, else width × height —, then the masks as bytes, width × height each). A plugin
//! crate exports its entries with [`export_plugins!`](crate::export_plugins).

use crate::{Dataset, PluginEntry, PluginError, SampleRecord, Split};
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};

/// The open datasets of a plugin library, by handle.
pub struct State {
    open: RwLock<Vec<Option<Arc<dyn Dataset>>>>,
}

impl State {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> State {
        State { open: RwLock::new(Vec::new()) }
    }
}

/// Packs a response frame.
pub fn frame(ok: bool, header: &Value, payload: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = Vec::with_capacity(5 + h.len() + payload.len());
    out.push(if ok { 0 } else { 1 });
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    out
}

/// Unpacks a response frame: (ok, header, payload).
pub fn unframe(bytes: &[u8]) -> Result<(bool, Value, &[u8]), String> {
    if bytes.len() < 5 {
        return Err(format!("a response of {} bytes is shorter than its 5-byte head", bytes.len()));
    }
    let n = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let h = bytes.get(5..5 + n).ok_or("the response's JSON length exceeds the response")?;
    let header: Value = serde_json::from_slice(h).map_err(|e| format!("the response's JSON does not parse: {e}"))?;
    Ok((bytes[0] == 0, header, &bytes[5 + n..]))
}

/// A plugin error as JSON, and back.
pub fn error_json(e: &PluginError) -> Value {
    match e {
        PluginError::Input { path, what } => json!({ "kind": "input", "path": path, "what": what }),
        PluginError::Config { dataset, what } => json!({ "kind": "config", "dataset": dataset, "what": what }),
    }
}

pub fn error_from_json(v: &Value) -> PluginError {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    match v["kind"].as_str() {
        Some("input") => PluginError::Input { path: s("path"), what: s("what") },
        _ => PluginError::Config { dataset: s("dataset"), what: s("what") },
    }
}

fn fail(what: impl Into<String>) -> Vec<u8> {
    frame(false, &json!({ "kind": "config", "dataset": "", "what": what.into() }), &[])
}

/// Serves one request (the body of `fx_plugin_call`). Panics of the plugin's code become errors.
pub fn serve(state: &State, entries: fn() -> Vec<PluginEntry>, request: &[u8]) -> Vec<u8> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_inner(state, entries, request)))
        .unwrap_or_else(|_| fail("the plugin panicked"))
}

fn serve_inner(state: &State, entries: fn() -> Vec<PluginEntry>, request: &[u8]) -> Vec<u8> {
    let req: Value = match serde_json::from_slice(request) {
        Ok(v) => v,
        Err(e) => return fail(format!("request is not JSON: {e}")),
    };
    let dataset = |req: &Value| -> Result<Arc<dyn Dataset>, Vec<u8>> {
        let h = req["handle"].as_u64().ok_or_else(|| fail("request without a handle"))? as usize;
        let open = state.open.read().unwrap_or_else(|e| e.into_inner());
        open.get(h).and_then(|d| d.clone()).ok_or_else(|| fail(format!("no open dataset with handle {h}")))
    };
    let result = |r: Result<Value, PluginError>| match r {
        Ok(v) => frame(true, &v, &[]),
        Err(e) => frame(false, &error_json(&e), &[]),
    };
    match req["op"].as_str().unwrap_or("") {
        "list" => frame(
            true,
            &Value::Array(entries().iter().map(|e| json!({ "name": e.name, "summary": e.summary })).collect()),
            &[],
        ),
        "open" => {
            let name = req["plugin"].as_str().unwrap_or("");
            let Some(entry) = entries().into_iter().find(|e| e.name == name) else {
                return fail(format!("this library has no plugin `{name}`"));
            };
            let spec = match serde_json::from_value(req["spec"].clone()) {
                Ok(s) => s,
                Err(e) => return fail(format!("bad dataset spec: {e}")),
            };
            match (entry.open)(&spec) {
                Ok(ds) => {
                    let mut open = state.open.write().unwrap_or_else(|e| e.into_inner());
                    open.push(Some(Arc::from(ds)));
                    frame(true, &json!({ "handle": open.len() - 1 }), &[])
                }
                Err(e) => frame(false, &error_json(&e), &[]),
            }
        }
        "desc" => match dataset(&req) {
            Ok(d) => frame(true, &serde_json::to_value(d.desc()).unwrap_or(Value::Null), &[]),
            Err(f) => f,
        },
        "warnings" => match dataset(&req) {
            Ok(d) => frame(true, &json!(d.warnings()), &[]),
            Err(f) => f,
        },
        "index" => match dataset(&req) {
            Ok(d) => {
                let split: Split = match serde_json::from_value(req["split"].clone()) {
                    Ok(s) => s,
                    Err(e) => return fail(format!("bad split: {e}")),
                };
                result(d.index(split).map(|v| serde_json::to_value(v).unwrap_or(Value::Null)))
            }
            Err(f) => f,
        },
        "load" => match dataset(&req) {
            Ok(d) => {
                let record: SampleRecord = match serde_json::from_value(req["record"].clone()) {
                    Ok(r) => r,
                    Err(e) => return fail(format!("bad record: {e}")),
                };
                let size = req["size_hint"].as_u64().unwrap_or(0) as usize;
                match d.load(&record, size) {
                    Ok(s) => {
                        let header = json!({ "id": s.id, "height": s.height, "width": s.width, "image_dims": s.image_dims, "cls": s.cls,
                                             "boxes": s.boxes, "masks": s.masks.len(), "warnings": s.warnings });
                        let mut payload =
                            Vec::with_capacity(s.image.len() * 4 + s.masks.iter().map(|m| m.len()).sum::<usize>());
                        for v in &s.image {
                            payload.extend_from_slice(&v.to_le_bytes());
                        }
                        for m in &s.masks {
                            payload.extend_from_slice(m);
                        }
                        frame(true, &header, &payload)
                    }
                    Err(e) => frame(false, &error_json(&e), &[]),
                }
            }
            Err(f) => f,
        },
        "close" => {
            if let Some(h) = req["handle"].as_u64() {
                let mut open = state.open.write().unwrap_or_else(|e| e.into_inner());
                if let Some(slot) = open.get_mut(h as usize) {
                    *slot = None;
                }
            }
            frame(true, &json!({}), &[])
        }
        other => fail(format!("unknown request `{other}`")),
    }
}

/// Hands a response to the host (freed by [`free_raw`] through `fx_plugin_free`).
///
/// # Safety
/// `out_len` must be valid for a write of one usize.
pub unsafe fn into_raw(bytes: Vec<u8>, out_len: *mut usize) -> *mut u8 {
    let b = bytes.into_boxed_slice();
    unsafe { *out_len = b.len() };
    Box::into_raw(b) as *mut u8
}

/// # Safety
/// `ptr` and `len` must come from [`into_raw`] of this library, freed once.
pub unsafe fn free_raw(ptr: *mut u8, len: usize) {
    if !ptr.is_null() {
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }
}

/// Exports a plugin library's entries through the C ABI: `fx_plugin::export_plugins!(plugins);`
/// where `plugins` is a `fn() -> Vec<PluginEntry>`. Build the crate as a `cdylib` and list the
/// library in an experiment's `plugins = ["path/to/libname.so"]`.
#[macro_export]
macro_rules! export_plugins {
    ($entries:path) => {
        #[no_mangle]
        pub extern "C" fn fx_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        /// The fx-plugin version this library was built against (NUL-terminated).
        #[no_mangle]
        pub extern "C" fn fx_plugin_fingerprint() -> *const std::ffi::c_char {
            $crate::FINGERPRINT.as_ptr() as *const std::ffi::c_char
        }

        /// # Safety
        /// `req` must point to `len` readable bytes and `out_len` to a writable usize.
        #[no_mangle]
        pub unsafe extern "C" fn fx_plugin_call(req: *const u8, len: usize, out_len: *mut usize) -> *mut u8 {
            static STATE: $crate::abi::State = $crate::abi::State::new();
            let request = unsafe { std::slice::from_raw_parts(req, len) };
            unsafe { $crate::abi::into_raw($crate::abi::serve(&STATE, $entries, request), out_len) }
        }

        /// # Safety
        /// `ptr`/`len` must be a response of `fx_plugin_call`, freed once.
        #[no_mangle]
        pub unsafe extern "C" fn fx_plugin_free(ptr: *mut u8, len: usize) {
            unsafe { $crate::abi::free_raw(ptr, len) }
        }
    };
}
