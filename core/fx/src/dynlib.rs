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
    transport: Transport,
}

/// How requests reach the library's code.
enum Transport {
    /// Loaded into this process: a crash in it is a crash of fx.
    InProcess {
        call: CallFn,
        free: FreeFn,
        // Last: the function pointers above point into it.
        _lib: libloading::Library,
    },
    /// Loaded into a child process (`fx-tui plugin-host LIB`) that speaks the same ABI over its
    /// stdin/stdout: a segfault or abort kills the child only; it is restarted (its datasets
    /// re-opened) up to [`MAX_RESTARTS`] times, then the library's datasets are disabled.
    Child(std::sync::Mutex<ChildHost>),
}

/// Restarts of a crashed plugin process before its datasets are disabled.
pub const MAX_RESTARTS: usize = 3;

/// The longest wait for a plugin process's reply (indexing a large dataset included).
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

struct ChildHost {
    exe: PathBuf,
    child: Option<(std::process::Child, std::process::ChildStdin, std::process::ChildStdout)>,
    /// The successful open/close requests so far with their replies, replayed into a restarted
    /// child so that handles stay valid.
    log: Vec<(Vec<u8>, Vec<u8>)>,
    restarts: usize,
    disabled: Option<String>,
}

impl ChildHost {
    fn spawn(&mut self, lib: &Path) -> std::io::Result<()> {
        // Writing to a child that died must be an error here, not a SIGPIPE that ends fx.
        // SAFETY: setting a signal disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let mut child = std::process::Command::new(&self.exe)
            .arg("plugin-host")
            .arg(lib)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        self.child = Some((child, stdin, stdout));
        Ok(())
    }

    /// One request/response on the pipes; an I/O error means the child died or hung: a reply
    /// must begin within `REPLY_TIMEOUT` (a decoder stuck on one file must not stop training).
    fn exchange(&mut self, req: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Write};
        use std::os::unix::io::AsRawFd;
        let (_, stdin, stdout) = self.child.as_mut().ok_or_else(|| std::io::Error::other("no plugin process"))?;
        stdin.write_all(&(req.len() as u32).to_le_bytes())?;
        stdin.write_all(req)?;
        stdin.flush()?;
        let mut pfd = libc::pollfd { fd: stdout.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one descriptor this struct owns.
        let ready = unsafe { libc::poll(&mut pfd, 1, REPLY_TIMEOUT.as_millis() as libc::c_int) };
        if ready <= 0 {
            return Err(std::io::Error::other(format!("no reply within {} s", REPLY_TIMEOUT.as_secs())));
        }
        let mut len = [0u8; 4];
        stdout.read_exact(&mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        if n > 1 << 30 {
            return Err(std::io::Error::other(format!("a response of {n} bytes")));
        }
        let mut buf = vec![0u8; n];
        stdout.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Kills and reaps the current child, if any.
    fn kill(&mut self) {
        if let Some((mut c, _, _)) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A request. A child that dies on it is restarted (its opens replayed) and the request fails
    /// — a sample that crashes the plugin is skipped, not retried; after [`MAX_RESTARTS`]
    /// restarts the library's datasets are disabled.
    fn call(&mut self, lib: &Path, req: &[u8], logged: bool) -> Result<Vec<u8>, String> {
        if let Some(why) = &self.disabled {
            return Err(why.clone());
        }
        if self.child.is_none() {
            self.restart(lib)?;
        }
        match self.exchange(req) {
            Ok(r) => {
                // Only requests that succeeded changed the child's state (an open that failed
                // allotted no handle): those are replayed into a restarted child.
                let ok = fx_plugin::abi::unframe(&r).map(|(ok, _, _)| ok).unwrap_or(false);
                if logged && ok {
                    self.log.push((req.to_vec(), r.clone()));
                }
                Ok(r)
            }
            Err(e) => {
                // The child died, hung or broke the protocol: reap it, then start a fresh one for
                // the requests to come.
                self.kill();
                self.restarts += 1;
                if self.restarts > MAX_RESTARTS {
                    let why = format!(
                        "its plugin process crashed {} times; its datasets are disabled for the rest of the run",
                        self.restarts
                    );
                    self.disabled = Some(why.clone());
                    return Err(why);
                }
                eprintln!(
                    "fx: warning: {}: the plugin process died ({e}); restarting it ({}/{MAX_RESTARTS})",
                    lib.display(),
                    self.restarts
                );
                self.restart(lib)?;
                Err(format!("the plugin process crashed on this request (restarted, {}/{MAX_RESTARTS})", self.restarts))
            }
        }
    }

    /// A new child with the open datasets of the previous one: every replayed request must give
    /// the reply it gave before (the same handles), or the library is disabled — a shifted handle
    /// would serve one dataset's samples as another's.
    fn restart(&mut self, _lib: &Path) -> Result<(), String> {
        self.spawn(_lib).map_err(|e| format!("cannot start its plugin process {}: {e}", self.exe.display()))?;
        for (req, before) in self.log.clone() {
            let same = match self.exchange(&req) {
                Ok(now) => now == before,
                Err(_) => false,
            };
            if !same {
                self.kill();
                let why = "its restarted plugin process did not re-open its datasets as before; its datasets are disabled for the rest of the run".to_string();
                self.disabled = Some(why.clone());
                return Err(why);
            }
        }
        Ok(())
    }
}

impl Drop for ChildHost {
    fn drop(&mut self) {
        if let Some((mut c, stdin, _)) = self.child.take() {
            // Closing its stdin ends a healthy child; a hung one is killed after a grace period.
            drop(stdin);
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Which process runs a plugin library's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A child process for libraries that are not part of this fx build (not beside the fx-tui
    /// executable); in process for the workspace's own plugin libraries.
    #[default]
    Auto,
    Process,
    None,
}

/// The executable that hosts isolated plugins: this one when it is fx-tui, or FX_PLUGIN_HOST.
fn host_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FX_PLUGIN_HOST") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    (exe.file_name()? == "fx-tui").then_some(exe)
}

/// Whether a library is part of this fx build: it lies beside the running executable.
fn beside_exe(path: &Path) -> bool {
    let dir = |p: &Path| p.parent().and_then(|d| std::fs::canonicalize(d).ok());
    match (std::env::current_exe().ok(), std::fs::canonicalize(path).ok()) {
        (Some(exe), Some(lib)) => dir(&exe).is_some() && dir(&exe) == dir(&lib),
        _ => false,
    }
}

/// The child side of an isolated plugin: loads the library and answers framed requests on
/// stdin/stdout until stdin closes (`fx-tui plugin-host LIB`).
pub fn serve_plugin_host(path: &Path) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::io::FromRawFd;
    // The protocol gets a private copy of stdout; fd 1 becomes stderr, so a plugin's println!
    // lands in the log instead of corrupting a reply.
    // SAFETY: dup/dup2 on the process's standard descriptors; the File owns the new one.
    let mut output = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            bail!("cannot set up the plugin host's descriptors");
        }
        std::fs::File::from_raw_fd(fd)
    };
    let lib = Library::open(path)?;
    let mut input = std::io::stdin().lock();
    loop {
        let mut len = [0u8; 4];
        if input.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let mut req = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut req)?;
        let resp = lib.call_raw(&req)?;
        output.write_all(&(resp.len() as u32).to_le_bytes())?;
        output.write_all(&resp)?;
        output.flush()?;
    }
}

impl Library {
    /// A library with the given isolation: in a child process when asked (or, by default, when
    /// it is not part of this fx build) and an fx-tui executable can host it.
    pub fn open_isolated(path: &Path, isolation: Isolation) -> Result<Arc<Library>> {
        let local = Library::open(path)?;
        let isolate = match isolation {
            Isolation::None => false,
            Isolation::Process => true,
            Isolation::Auto => !beside_exe(&local.path),
        };
        let exe = match (isolate, host_exe(), isolation) {
            (true, Some(exe), _) => exe,
            (true, None, Isolation::Process) => bail!(
                "{}: plugin_isolation = \"process\" needs an fx-tui executable to host it (run fx-tui, or set FX_PLUGIN_HOST)",
                path.display()
            ),
            _ => return Ok(local),
        };
        // The library was checked in process (ABI version, entry points); its datasets are served
        // by the child from now on.
        let host = ChildHost { exe, child: None, log: Vec::new(), restarts: 0, disabled: None };
        Ok(Arc::new(Library { path: local.path.clone(), transport: Transport::Child(std::sync::Mutex::new(host)) }))
    }

    /// Loads a plugin library into this process and checks that it speaks this fx's plugin ABI.
    pub fn open(path: &Path) -> Result<Arc<Library>> {
        let path = &as_path(path);
        let p = path.display();
        if !path.is_file() {
            bail!("{p}: no such plugin library");
        }
        check_trust(path)?;
        // SAFETY: loading runs the library's initialisers; a plugin is code the user chose to run.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| anyhow!("{p}: cannot load it as a shared library: {e}"))?;
        let version = unsafe { lib.get::<unsafe extern "C" fn() -> u32>(b"fx_plugin_abi_version\0") }
            .map_err(|_| anyhow!("{p}: not an fx plugin (it exports no fx_plugin_abi_version; build it with fx_plugin::export_plugins!)"))?;
        let v = unsafe { version() };
        if v != ABI_VERSION {
            bail!("{p}: built against fx plugin ABI {v}, this fx speaks ABI {ABI_VERSION}; rebuild the plugin against this fx-plugin");
        }
        // The build fingerprint, before any other symbol is used.
        let rebuild = "rebuild it against this fx's fx-plugin (`cargo build --release` in the plugin's crate, \
                       with fx-plugin from this fx's source tree)";
        let fingerprint = unsafe {
            lib.get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(b"fx_plugin_fingerprint\0")
        }
        .map_err(|_| {
            anyhow!("{p}: built before fx plugins carried a build fingerprint (no fx_plugin_fingerprint); {rebuild}")
        })?;
        // SAFETY: the symbol returns a pointer to a static NUL-terminated string in the library.
        let theirs = unsafe { std::ffi::CStr::from_ptr(fingerprint()) }.to_string_lossy().into_owned();
        if theirs != fx_plugin::fingerprint() {
            bail!("{p}: built against {theirs}, this fx has {}; {rebuild}", fx_plugin::fingerprint());
        }
        let call = *unsafe { lib.get::<CallFn>(b"fx_plugin_call\0") }
            .map_err(|_| anyhow!("{p}: fx plugin without fx_plugin_call"))?;
        let free = *unsafe { lib.get::<FreeFn>(b"fx_plugin_free\0") }
            .map_err(|_| anyhow!("{p}: fx plugin without fx_plugin_free"))?;
        Ok(Arc::new(Library { path: path.to_path_buf(), transport: Transport::InProcess { call, free, _lib: lib } }))
    }

    /// Whether the library's code runs in a child process.
    pub fn isolated(&self) -> bool {
        matches!(self.transport, Transport::Child(_))
    }

    /// One framed response for one request, whichever process runs the code.
    fn call_raw(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        match &self.transport {
            Transport::InProcess { call, free, .. } => {
                let mut len = 0usize;
                // SAFETY: the ABI: request bytes in, a response this library allocated out, freed below.
                let ptr = unsafe { call(bytes.as_ptr(), bytes.len(), &mut len) };
                if ptr.is_null() {
                    bail!("{}: the plugin returned no response", self.path.display());
                }
                let owned = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
                unsafe { free(ptr, len) };
                Ok(owned)
            }
            Transport::Child(host) => {
                // Opens and closes change the child's state: a restarted child replays them.
                let logged = serde_json::from_slice::<Value>(bytes)
                    .ok()
                    .is_some_and(|v| matches!(v["op"].as_str(), Some("open") | Some("close")));
                let mut h = host.lock().unwrap_or_else(|e| e.into_inner());
                h.call(&self.path, bytes, logged).map_err(|e| anyhow!(e))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One request; `Ok((header, payload))` or the plugin's error.
    fn call(&self, req: &Value) -> std::result::Result<(Value, Vec<u8>), PluginError> {
        let bytes = req.to_string().into_bytes();
        let owned = self.call_raw(&bytes).map_err(|e| PluginError::input(self.path.display(), format!("{e:#}")))?;
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
        let (v, _) = self
            .call(&json!({ "op": "list" }))
            .map_err(|e| anyhow!("{}: listing its plugins: {e}", self.path.display()))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (e["name"].as_str().unwrap_or("").to_string(), e["summary"].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
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
        let handle =
            h["handle"].as_u64().ok_or_else(|| PluginError::config(&spec.name, "the plugin returned no handle"))?;
        let (d, _) = lib.call(&json!({ "op": "desc", "handle": handle }))?;
        let desc: DatasetDesc = serde_json::from_value(d)
            .map_err(|e| PluginError::config(&spec.name, format!("the plugin's description does not parse: {e}")))?;
        Ok(DynDataset { lib, handle, desc })
    }
}

impl Dataset for DynDataset {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> std::result::Result<Vec<SampleRecord>, PluginError> {
        let (v, _) = self.lib.call(&json!({ "op": "index", "handle": self.handle, "split": split }))?;
        serde_json::from_value(v)
            .map_err(|e| PluginError::config(&self.desc.name, format!("the plugin's index does not parse: {e}")))
    }

    fn load(&self, record: &SampleRecord, size_hint: usize) -> std::result::Result<Sample, PluginError> {
        let (h, payload) =
            self.lib.call(&json!({ "op": "load", "handle": self.handle, "record": record, "size_hint": size_hint }))?;
        let bad = |what: &str| {
            PluginError::input(format!("plugin {}", self.lib.path.display()), format!("sample {}: {what}", record.id))
        };
        let (height, width) = (
            h["height"].as_u64().ok_or_else(|| bad("no height"))? as usize,
            h["width"].as_u64().ok_or_else(|| bad("no width"))? as usize,
        );
        let masks = h["masks"].as_u64().unwrap_or(0) as usize;
        let image_dims: Option<(usize, usize)> =
            serde_json::from_value(h["image_dims"].clone()).map_err(|_| bad("bad image_dims"))?;
        let side_ok = |v: usize| (1..=65536).contains(&v);
        if !side_ok(height)
            || !side_ok(width)
            || image_dims.is_some_and(|(w, h)| !side_ok(w) || !side_ok(h))
            || masks > 4096
        {
            return Err(bad(&format!(
                "image {width}×{height} (pixels {image_dims:?}) with {masks} mask(s) is out of range"
            )));
        }
        let px = height * width;
        let ipx = image_dims.map(|(w, h)| w * h).unwrap_or(px);
        if Some(payload.len()) != ipx.checked_mul(4).and_then(|a| masks.checked_mul(px).and_then(|b| a.checked_add(b)))
        {
            return Err(bad(&format!(
                "{} payload bytes for a {width}×{height} image with {masks} mask(s)",
                payload.len()
            )));
        }
        let image = payload[..ipx * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let masks = (0..masks).map(|k| payload[ipx * 4 + k * px..ipx * 4 + (k + 1) * px].to_vec()).collect();
        let cls: Vec<f32> = serde_json::from_value(h["cls"].clone()).map_err(|_| bad("bad cls labels"))?;
        let boxes: Vec<LabeledBox> = serde_json::from_value(h["boxes"].clone()).map_err(|_| bad("bad boxes"))?;
        let warnings: Vec<String> = serde_json::from_value(h["warnings"].clone()).unwrap_or_default();
        Ok(Sample {
            id: h["id"].as_str().unwrap_or(&record.id).to_string(),
            height,
            width,
            image,
            image_dims,
            cls,
            boxes,
            masks,
            warnings,
        })
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

/// Refuses a plugin library that someone other than the user could have written — the file or
/// its folder writable by group or others (a sticky folder such as /tmp excepted: only a file's
/// owner may replace it there), or owned by another user than the one running fx or root: a
/// plugin's code runs with the user's rights.
/// The variable that, set to 1, lets a run resume (or a model load) with plugin libraries whose
/// SHA-256 differs from the one recorded when it was trained.
pub const ALLOW_CHANGED_PLUGINS: &str = "FX_ALLOW_CHANGED_PLUGINS";

/// dlopen reads a bare file name as "search the system library path": a plugin named by its bare
/// file name is the file in the current folder, as any other path.
pub fn as_path(path: &Path) -> PathBuf {
    if path.components().count() == 1 {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

pub fn check_trust(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    let check = |p: &Path, what: &str, folder: bool| -> Result<()> {
        let m = std::fs::metadata(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
        let mode = m.mode() & 0o7777;
        if m.uid() != me && m.uid() != 0 {
            bail!(
                "{}: refused: this plugin library's {what} is owned by uid {}, neither you (uid {me}) nor root, \
                 and a plugin runs with your rights; copy the library to a folder of yours",
                p.display(),
                m.uid()
            );
        }
        let sticky = folder && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            let who = if mode & 0o002 != 0 { "everyone" } else { "its group" };
            bail!(
                "{}: refused: this plugin library's {what} is writable by {who} (mode {mode:04o}), and a plugin runs \
                 with your rights; make it yours alone: chmod go-w {}",
                p.display(),
                p.display()
            );
        }
        Ok(())
    };
    check(path, "file", false)?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check(parent, "folder", true)
}

/// The SHA-256 of a file, in hex: what a run records of each plugin library it used.
pub fn sha256_hex(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}
