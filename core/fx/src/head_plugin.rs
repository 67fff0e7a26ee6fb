//! Head plugins on the host side: loading a head library (the same trust checks as a dataset
//! plugin, then the head ABI version and build fingerprint before any other symbol), creating a
//! head from its declaration, and calling its forward with libtorch tensor handles. The ABI is in
//! `fx_plugin::head`; libraries are written with the `fx-head` crate (docs/HEAD_PLUGINS.md).
//!
//! A head library runs in this process (its forward works on this process's tensors and autograd
//! graph), so it is never isolated in a child; a failing forward comes back as an error, and the
//! trainer disables that (dataset, task).

use anyhow::{anyhow, bail, Result};
use fx_plugin::head::{HeadDecl, HeadKindInfo, HeadRequest, HEAD_ABI_VERSION};
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tch::Tensor;

type NewFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut *mut c_char, *mut *mut c_char) -> *mut c_void;
type ForwardFn = unsafe extern "C" fn(
    *mut c_void,
    *const *mut c_void,
    usize,
    *const *mut c_void,
    usize,
    i32,
    *mut *mut c_void,
) -> *mut c_char;
type DropFn = unsafe extern "C" fn(*mut c_void);
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// A loaded head library.
pub struct HeadLibrary {
    pub path: PathBuf,
    /// SHA-256 of the file as it was loaded: the code this process runs.
    pub sha256: String,
    pub kinds: Vec<HeadKindInfo>,
    new: NewFn,
    forward: ForwardFn,
    drop: DropFn,
    free: FreeFn,
    // Last: the symbols above point into it.
    _lib: libloading::Library,
}

/// Libraries stay loaded for the process's lifetime, once per file: heads made from them may
/// live in any model (student, teacher, predict).
static LOADED: Mutex<Option<HashMap<PathBuf, Arc<HeadLibrary>>>> = Mutex::new(None);

/// Whether a library exports each of `symbols` (NUL-terminated): `fx_head_abi_version` for heads,
/// `fx_plugin_abi_version` for datasets; a library may offer both. Read from the file, without
/// loading it: a dataset library meant to run in a child process (`plugin_isolation`) must not
/// have its initialisers run in this one. An exported name is in the file's dynamic string
/// table, NUL-terminated, so the bytes are enough (the loader checks it for real later).
pub fn exports(path: &Path, symbols: &[&[u8]]) -> Vec<bool> {
    let path = crate::dynlib::as_path(path);
    let bytes =
        if crate::dynlib::check_trust(&path).is_ok() { std::fs::read(&path).unwrap_or_default() } else { vec![] };
    symbols
        .iter()
        .map(|symbol| {
            // Preceded by a NUL too: the start of a name in the string table, not a longer
            // name's tail.
            let mut needle = vec![0u8];
            needle.extend_from_slice(symbol);
            bytes.windows(needle.len()).any(|w| w == needle.as_slice())
        })
        .collect()
}

/// Whether a library offers heads (it may also offer datasets).
pub fn is_head_library(path: &Path) -> bool {
    exports(path, &[b"fx_head_abi_version\0"])[0]
}

/// Whether a library offers heads and no datasets (it has no dataset entry points to load).
pub fn is_heads_only(path: &Path) -> bool {
    exports(path, &[b"fx_head_abi_version\0", b"fx_plugin_abi_version\0"]) == [true, false]
}

/// Opens (once) the head library at `path`.
pub fn open(path: &Path) -> Result<Arc<HeadLibrary>> {
    let path = crate::dynlib::as_path(path);
    let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = loaded.get_or_insert_with(HashMap::new).get(&key) {
        return Ok(l.clone());
    }
    let p = path.display();
    if !path.is_file() {
        bail!("{p}: no such head plugin library");
    }
    crate::dynlib::check_trust(&path)?;
    // SAFETY: loading runs the library's initialisers; a plugin is code the user chose to run.
    // RTLD_NOW: a library built against another libtorch fails here, with a message, instead of
    // at its first call with a lookup error that ends the process.
    let lib: libloading::Library = unsafe {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        Library::open(Some(&path), RTLD_NOW | RTLD_LOCAL)
    }
    .map(Into::into)
    .map_err(|e| anyhow!("{p}: cannot load it as a shared library: {e}"))?;
    let version = unsafe { lib.get::<unsafe extern "C" fn() -> u32>(b"fx_head_abi_version\0") }.map_err(|_| {
        anyhow!("{p}: offers no heads (it exports no fx_head_abi_version; build it with fx_head::export_heads!)")
    })?;
    let v = unsafe { version() };
    let rebuild = "rebuild it against this fx's fx-head (`cargo build --release` in the plugin's crate, with fx-head \
                   from this fx's source tree)";
    if v != HEAD_ABI_VERSION {
        bail!("{p}: built against fx head ABI {v}, this fx speaks {HEAD_ABI_VERSION}; {rebuild}");
    }
    let fingerprint = unsafe { lib.get::<unsafe extern "C" fn() -> *const c_char>(b"fx_head_fingerprint\0") }
        .map_err(|_| anyhow!("{p}: a head library without fx_head_fingerprint; {rebuild}"))?;
    // SAFETY: the symbol returns a static NUL-terminated string of the library.
    let theirs = unsafe { CStr::from_ptr(fingerprint()) }.to_string_lossy().into_owned();
    if theirs != fx_head::fingerprint() {
        bail!("{p}: built against {theirs}, this fx has {}; {rebuild}", fx_head::fingerprint());
    }
    let sym = |name: &[u8]| -> Result<*const ()> {
        unsafe { lib.get::<*const ()>(name) }
            .map(|s| *s)
            .map_err(|_| anyhow!("{p}: a head library without {}", String::from_utf8_lossy(&name[..name.len() - 1])))
    };
    // SAFETY: the head ABI's signatures (fx_plugin::head), exported by export_heads!.
    let (new, forward, drop, free, kinds_fn) = unsafe {
        (
            std::mem::transmute::<*const (), NewFn>(sym(b"fx_head_new\0")?),
            std::mem::transmute::<*const (), ForwardFn>(sym(b"fx_head_forward\0")?),
            std::mem::transmute::<*const (), DropFn>(sym(b"fx_head_drop\0")?),
            std::mem::transmute::<*const (), FreeFn>(sym(b"fx_head_free_string\0")?),
            std::mem::transmute::<*const (), unsafe extern "C" fn() -> *mut c_char>(sym(b"fx_head_kinds\0")?),
        )
    };
    let text = take_string(free, unsafe { kinds_fn() }).unwrap_or_default();
    let kinds: Vec<HeadKindInfo> =
        serde_json::from_str(&text).map_err(|e| anyhow!("{p}: its list of heads is not valid: {e}"))?;
    let sha256 = crate::dynlib::sha256_hex(&path)?;
    let l = Arc::new(HeadLibrary { path: path.clone(), sha256, kinds, new, forward, drop, free, _lib: lib });
    loaded.get_or_insert_with(HashMap::new).insert(key, l.clone());
    Ok(l)
}

/// A string the library returned, copied and freed.
fn take_string(free: FreeFn, s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string the library allocated; freed once, by the library.
    let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    unsafe { free(s) };
    Some(text)
}

/// The library among `libraries` that offers the head `kind` for `task`.
pub fn find(libraries: &[PathBuf], kind: &str, task: fx_plugin::Task) -> Result<Arc<HeadLibrary>> {
    let mut offered = Vec::new();
    for path in libraries {
        if !is_head_library(path) {
            continue;
        }
        let lib = open(path)?;
        match lib.kinds.iter().find(|k| k.name == kind) {
            Some(k) if k.task == task => return Ok(lib),
            Some(k) => bail!("{}: `{kind}` is a {} head, asked for as a {task} head", lib.path.display(), k.task),
            None => offered.extend(lib.kinds.iter().map(|k| format!("{} ({})", k.name, k.task))),
        }
    }
    let offered = if offered.is_empty() { "none".to_string() } else { offered.join(", ") };
    bail!("no head plugin library of the experiment's `plugins` offers the head `{kind}` (they offer: {offered})")
}

/// One head made by a library.
pub struct PluginHead {
    lib: Arc<HeadLibrary>,
    handle: *mut c_void,
    pub kind: String,
    pub decl: HeadDecl,
}

// SAFETY: the library's Head is Send + Sync (fx_head::Head requires it); the handle is only
// passed back to it.
unsafe impl Send for PluginHead {}
unsafe impl Sync for PluginHead {}

impl HeadLibrary {
    /// A head of `kind` for `request`, with its checked declaration.
    pub fn create(self: &Arc<Self>, kind: &str, request: &HeadRequest) -> Result<PluginHead> {
        let p = self.path.display();
        let c_kind = CString::new(kind)?;
        let c_req = CString::new(serde_json::to_string(request)?)?;
        let (mut decl, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: the head ABI; both strings outlive the call; the out-pointers are ours.
        let handle = unsafe { (self.new)(c_kind.as_ptr(), c_req.as_ptr(), &mut decl, &mut err) };
        let err = take_string(self.free, err);
        let decl = take_string(self.free, decl);
        if handle.is_null() {
            bail!("{p}: head `{kind}`: {}", err.unwrap_or_else(|| "refused without a reason".into()));
        }
        // Owned from here on: an invalid declaration drops it through the library.
        let mut head = PluginHead {
            lib: self.clone(),
            handle,
            kind: kind.to_string(),
            decl: HeadDecl { inputs: vec![], params: vec![] },
        };
        head.decl = serde_json::from_str(&decl.unwrap_or_default())
            .map_err(|e| anyhow!("{p}: head `{kind}`: its declaration is not valid: {e}"))?;
        head.decl.check().map_err(|e| anyhow!("{p}: head `{kind}`: {e}"))?;
        Ok(head)
    }
}

impl PluginHead {
    /// The library's forward on `inputs` (in the declaration's order) and `params`; the logits.
    pub fn forward(&self, inputs: &[&Tensor], params: &[Tensor], train: bool) -> Result<Tensor> {
        let ins: Vec<*mut c_void> = inputs.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let ps: Vec<*mut c_void> = params.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: the head ABI: the handles stay alive for the call (the library shallow-clones
        // what it keeps), and `out`, when set, is a new handle we own.
        let err = unsafe {
            (self.lib.forward)(self.handle, ins.as_ptr(), ins.len(), ps.as_ptr(), ps.len(), train as i32, &mut out)
        };
        // SAFETY: when set, a fresh at::Tensor* from the same libtorch, handed over to us (freed
        // on every path below, also when an error came with it).
        let result = (!out.is_null()).then(|| unsafe { Tensor::from_ptr(out.cast()) });
        let what = || format!("head plugin `{}` ({})", self.kind, self.lib.path.display());
        if let Some(e) = take_string(self.lib.free, err) {
            bail!("{}: {e}", what());
        }
        let Some(t) = result.filter(|t| t.defined()) else { bail!("{}: returned no tensor", what()) };
        // What would otherwise fail inside fx's losses (a panic there ends the run, where an
        // error here disables the head).
        if !t.is_floating_point() {
            bail!("{}: returned {:?} logits; a floating-point tensor is expected", what(), t.kind());
        }
        if let Some(x) = inputs.first() {
            if t.device() != x.device() {
                bail!("{}: returned logits on {:?}, the features are on {:?}", what(), t.device(), x.device());
            }
        }
        Ok(t)
    }
}

impl Drop for PluginHead {
    fn drop(&mut self) {
        // SAFETY: the handle came from this library's fx_head_new and is dropped once.
        unsafe { (self.lib.drop)(self.handle) }
    }
}

/// A plugin head of `task` as `spec` records it, with its parameters created under `p` from the
/// library's declaration (so they are ordinary variables of the model). `outputs`: logits per
/// image (cls) or per pixel (seg); `channels`: of the features it reads. The library must be the
/// one the model was trained with (its SHA-256, when recorded), unless FX_ALLOW_CHANGED_PLUGINS=1.
pub fn build(
    p: &tch::nn::Path,
    spec: &fx_run::PluginHeadSpec,
    task: fx_plugin::Task,
    outputs: i64,
    channels: i64,
) -> Result<(PluginHead, Vec<Tensor>)> {
    use fx_plugin::head::Init;
    use tch::nn;
    let lib = open(&spec.library)?;
    let allowed = std::env::var(crate::dynlib::ALLOW_CHANGED_PLUGINS).as_deref() == Ok("1");
    if !spec.sha256.is_empty() && spec.sha256 != lib.sha256 && !allowed {
        bail!(
            "{}: the head plugin library changed since the model was trained (its SHA-256 differs from the one in \
             model.json); use the library it trained with, or set {}=1",
            lib.path.display(),
            crate::dynlib::ALLOW_CHANGED_PLUGINS
        );
    }
    let request = HeadRequest { task, labels: outputs, channels, options: spec.options.clone() };
    let head = lib.create(&spec.kind, &request)?;
    let params = head
        .decl
        .params
        .iter()
        .map(|d| {
            let init = match d.init {
                Init::Zeros => nn::Init::Const(0.0),
                Init::Ones => nn::Init::Const(1.0),
                Init::Constant { value } => nn::Init::Const(value),
                Init::Normal { std } => nn::Init::Randn { mean: 0.0, stdev: std },
                Init::Uniform { bound } => nn::Init::Uniform { lo: -bound, up: bound },
            };
            p.var(&d.name, &d.shape, init)
        })
        .collect();
    Ok((head, params))
}
