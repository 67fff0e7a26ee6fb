//! `fx-head`: what a head plugin library is written with. Implement [`Head`] for the forward pass,
//! list the kinds the library offers as [`HeadKind`]s, and `fx_head::export_heads!(kinds);`
//! exports the C ABI of [`fx_plugin::head`]. The host creates and owns the parameters the head
//! declares (see [`HeadDecl`]); the forward gets them, with the features it reads, as tensors that
//! autograd tracks like the host's own. docs/HEAD_PLUGINS.md is the guide.

pub use fx_plugin::head::{HeadDecl, HeadInput, HeadKindInfo, HeadRequest, Init, ParamDecl, HEAD_ABI_VERSION};
pub use fx_plugin::Task;
pub use tch;

use std::ffi::{c_char, c_void, CStr, CString};
use tch::Tensor;

/// The build fingerprint a head library and the host must share: fx-head's version (the ABI's
/// types) and the tch release (and so the libtorch) the tensors belong to.
pub const FINGERPRINT: &str = concat!("fx-head ", env!("CARGO_PKG_VERSION"), "; tch 0.24 (libtorch 2.11)\0");

/// [`FINGERPRINT`] without its terminating NUL.
pub fn fingerprint() -> &'static str {
    FINGERPRINT.trim_end_matches('\0')
}

/// A head's forward pass. `inputs` are the features the declaration lists, `params` its
/// parameters in declaration order; return the logits ((B, labels) for classification). An `Err`
/// or a panic disables the head's (dataset, task) for the rest of the run; the other tasks go on.
pub trait Head: Send + Sync {
    fn forward(&self, inputs: &[Tensor], params: &[Tensor], train: bool) -> Result<Tensor, String>;
}

/// One kind of head a library offers: `create` checks the request (options, sizes) and returns
/// the head with its declaration.
pub struct HeadKind {
    pub name: &'static str,
    pub task: Task,
    pub summary: &'static str,
    pub create: fn(&HeadRequest) -> Result<(HeadDecl, Box<dyn Head>), String>,
}

/// Exports the fx head C ABI for the kinds `$kinds()` returns (a `fn() -> Vec<HeadKind>`).
#[macro_export]
macro_rules! export_heads {
    ($kinds:path) => {
        #[no_mangle]
        pub extern "C" fn fx_head_abi_version() -> u32 {
            $crate::HEAD_ABI_VERSION
        }
        #[no_mangle]
        pub extern "C" fn fx_head_fingerprint() -> *const std::ffi::c_char {
            $crate::FINGERPRINT.as_ptr().cast()
        }
        #[no_mangle]
        pub extern "C" fn fx_head_kinds() -> *mut std::ffi::c_char {
            $crate::abi::kinds($kinds)
        }
        /// # Safety
        /// The fx head ABI: NUL-terminated strings in, out-pointers the host owns.
        #[no_mangle]
        pub unsafe extern "C" fn fx_head_new(
            kind: *const std::ffi::c_char,
            request: *const std::ffi::c_char,
            decl_out: *mut *mut std::ffi::c_char,
            err_out: *mut *mut std::ffi::c_char,
        ) -> *mut std::ffi::c_void {
            $crate::abi::new($kinds, kind, request, decl_out, err_out)
        }
        /// # Safety
        /// The fx head ABI: a head from fx_head_new, arrays of live tensor handles.
        #[no_mangle]
        pub unsafe extern "C" fn fx_head_forward(
            head: *mut std::ffi::c_void,
            inputs: *const *mut std::ffi::c_void,
            n_inputs: usize,
            params: *const *mut std::ffi::c_void,
            n_params: usize,
            train: i32,
            out: *mut *mut std::ffi::c_void,
        ) -> *mut std::ffi::c_char {
            $crate::abi::forward(head, inputs, n_inputs, params, n_params, train, out)
        }
        /// # Safety
        /// A head from fx_head_new, dropped once.
        #[no_mangle]
        pub unsafe extern "C" fn fx_head_drop(head: *mut std::ffi::c_void) {
            $crate::abi::drop_head(head)
        }
        /// # Safety
        /// A string this library returned, freed once.
        #[no_mangle]
        pub unsafe extern "C" fn fx_head_free_string(s: *mut std::ffi::c_char) {
            $crate::abi::free_string(s)
        }
    };
}

/// The library side of the ABI, called by the functions [`export_heads!`] generates.
pub mod abi {
    use super::*;

    fn c_string(s: String) -> *mut c_char {
        CString::new(s.replace('\0', " ")).expect("no NUL left").into_raw()
    }

    /// What a panic carried, as text. The payload is leaked, not dropped: its own Drop could
    /// panic again, outside any guard.
    fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
        let text = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        std::mem::forget(p);
        text
    }

    /// The kinds as JSON; null when listing them panicked (the host then reports the library).
    pub fn kinds(kinds: fn() -> Vec<HeadKind>) -> *mut c_char {
        std::panic::catch_unwind(|| {
            let list: Vec<HeadKindInfo> = kinds()
                .iter()
                .map(|k| HeadKindInfo { name: k.name.into(), task: k.task, summary: k.summary.into() })
                .collect();
            c_string(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
        })
        .unwrap_or(std::ptr::null_mut())
    }

    /// # Safety
    /// `kind` and `request` are NUL-terminated; `decl_out` and `err_out` are writable.
    pub unsafe fn new(
        kinds: fn() -> Vec<HeadKind>,
        kind: *const c_char,
        request: *const c_char,
        decl_out: *mut *mut c_char,
        err_out: *mut *mut c_char,
    ) -> *mut c_void {
        let made = std::panic::catch_unwind(|| -> Result<(HeadDecl, Box<dyn Head>), String> {
            let kind = CStr::from_ptr(kind).to_string_lossy().into_owned();
            let request = CStr::from_ptr(request).to_string_lossy();
            let req: HeadRequest = serde_json::from_str(&request).map_err(|e| format!("head request: {e}"))?;
            let kinds = kinds();
            let k = kinds.iter().find(|k| k.name == kind).ok_or_else(|| format!("no head kind `{kind}` here"))?;
            (k.create)(&req)
        })
        .unwrap_or_else(|p| Err(format!("creating the head panicked: {}", panic_text(p))));
        match made {
            Ok((decl, head)) => {
                *decl_out = c_string(serde_json::to_string(&decl).unwrap_or_default());
                // A thin pointer to the boxed trait object.
                Box::into_raw(Box::new(head)).cast()
            }
            Err(e) => {
                *err_out = c_string(e);
                std::ptr::null_mut()
            }
        }
    }

    /// # Safety
    /// `head` came from [`new`]; `inputs` and `params` hold live `at::Tensor*` handles the host
    /// keeps (each is shallow-cloned here, never freed); `out` is writable.
    pub unsafe fn forward(
        head: *mut c_void,
        inputs: *const *mut c_void,
        n_inputs: usize,
        params: *const *mut c_void,
        n_params: usize,
        train: i32,
        out: *mut *mut c_void,
    ) -> *mut c_char {
        if head.is_null() {
            return c_string("no head (null handle)".into());
        }
        let result = std::panic::catch_unwind(|| -> Result<Tensor, String> {
            let head = &*(head as *const Box<dyn Head>);
            let handles = |p: *const *mut c_void, n: usize| -> Vec<Tensor> {
                (0..n).map(|i| Tensor::clone_from_ptr(*p.add(i) as *mut torch_sys::C_tensor)).collect()
            };
            head.forward(&handles(inputs, n_inputs), &handles(params, n_params), train != 0)
        })
        .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(p))));
        match result {
            Ok(mut t) => {
                // The host takes this handle over (and frees it).
                *out = t.as_mut_ptr().cast();
                std::mem::forget(t);
                std::ptr::null_mut()
            }
            Err(e) => c_string(e),
        }
    }

    /// # Safety
    /// `head` came from [`new`] and is dropped once.
    pub unsafe fn drop_head(head: *mut c_void) {
        if !head.is_null() {
            // A head's own Drop must not unwind into the host.
            let dropped = std::panic::catch_unwind(|| drop(Box::from_raw(head as *mut Box<dyn Head>)));
            if let Err(p) = dropped {
                std::mem::forget(p);
            }
        }
    }

    /// # Safety
    /// `s` is a string this library returned, freed once.
    pub unsafe fn free_string(s: *mut c_char) {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
    }
}
