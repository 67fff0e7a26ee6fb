//! PyTorch's c10d, the engine behind `torch.distributed`: a TCP store for the rendezvous and a Gloo
//! process group for the collectives (CPU tensors; Gloo also reduces CUDA tensors through host
//! copies). Every call waits at most the timeout it was given and then fails with libtorch's
//! message, so a rank that died or hangs turns into an error on the others, never a hang.

use crate::{check, ptr, ptrs};
use anyhow::{Context, Result};
use std::ffi::{c_char, c_void, CString};
use std::time::Duration;
use tch::Tensor;

extern "C" {
    fn fx_shim_free(s: *mut c_char);
    fn fx_store_tcp(
        host: *const c_char,
        port: i32,
        server: bool,
        world: i32,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn fx_store_free(s: *mut c_void);
    fn fx_store_set(s: *mut c_void, key: *const c_char, data: *const u8, n: usize) -> *mut c_char;
    fn fx_store_set_timeout(s: *mut c_void, timeout_ms: i64) -> *mut c_char;
    fn fx_store_check(s: *mut c_void, key: *const c_char, found: *mut bool) -> *mut c_char;
    fn fx_store_get(s: *mut c_void, key: *const c_char, data: *mut *mut u8, n: *mut usize) -> *mut c_char;
    fn fx_pg_gloo(
        store: *mut c_void,
        rank: i32,
        world: i32,
        timeout_ms: i64,
        hostname: *const c_char,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn fx_pg_free(g: *mut c_void);
    #[cfg(fx_nccl)]
    fn fx_pg_nccl(store: *mut c_void, rank: i32, world: i32, timeout_ms: i64, out: *mut *mut c_void) -> *mut c_char;
    fn fx_pg_allreduce_sum(g: *mut c_void, ts: *const *mut c_void, n: usize, timeout_ms: i64) -> *mut c_char;
    fn fx_pg_broadcast(g: *mut c_void, ts: *const *mut c_void, n: usize, root: i32, timeout_ms: i64) -> *mut c_char;
    fn fx_pg_allgather(
        g: *mut c_void,
        input: *mut c_void,
        out: *const *mut c_void,
        world: usize,
        timeout_ms: i64,
    ) -> *mut c_char;
    fn fx_pg_barrier(g: *mut c_void, timeout_ms: i64) -> *mut c_char;
    fn fx_pg_grad_average(
        g: *mut c_void,
        loss: *mut c_void,
        params: *const *mut c_void,
        n: usize,
        world: i64,
        bucket_bytes: i64,
        timeout_ms: i64,
        out: *mut *mut c_void,
        overlapped: *mut i64,
    ) -> *mut c_char;
    fn fx_pg_sum_differentiable(
        g: *mut c_void,
        input: *mut c_void,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> *mut c_char;
}

fn c_string(s: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{s:?} contains a NUL byte"))
}

fn millis(t: Duration) -> i64 {
    t.as_millis().min(i64::MAX as u128) as i64
}

/// c10d's TCPStore: a key-value store served by rank 0, through which the ranks find each other.
pub struct TcpStore {
    raw: *mut c_void,
}

// SAFETY: c10d::TCPStore serialises its own client calls; the handle is only freed by Drop.
unsafe impl Send for TcpStore {}
unsafe impl Sync for TcpStore {}

impl TcpStore {
    /// Rank 0 (`server`) listens on `host:port`; every rank connects and waits until `world`
    /// ranks have, for at most `timeout`.
    pub fn connect(host: &str, port: u16, server: bool, world: usize, timeout: Duration) -> Result<TcpStore> {
        let h = c_string(host)?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: h outlives the call; raw is written on success only.
        let err = unsafe { fx_store_tcp(h.as_ptr(), port as i32, server, world as i32, millis(timeout), &mut raw) };
        check(err, &format!("c10d rendezvous at {host}:{port}"))?;
        Ok(TcpStore { raw })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let k = c_string(key)?;
        // SAFETY: key and value outlive the call.
        check(unsafe { fx_store_set(self.raw, k.as_ptr(), value.as_ptr(), value.len()) }, &format!("store set {key}"))
    }

    /// How long the store's later calls wait for the server or a key.
    pub fn set_timeout(&self, timeout: Duration) -> Result<()> {
        // SAFETY: the handle is live.
        check(unsafe { fx_store_set_timeout(self.raw, millis(timeout)) }, "store set_timeout")
    }

    /// Whether `key` is set now (never waits).
    pub fn check(&self, key: &str) -> Result<bool> {
        let k = c_string(key)?;
        let mut found = false;
        // SAFETY: key outlives the call; found is written on success.
        check(unsafe { fx_store_check(self.raw, k.as_ptr(), &mut found) }, &format!("store check {key}"))?;
        Ok(found)
    }

    /// The value of `key`, waiting (up to the store's timeout) until some rank sets it.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let k = c_string(key)?;
        let (mut data, mut n) = (std::ptr::null_mut(), 0usize);
        // SAFETY: on success data is a malloc'd buffer of n bytes, copied then freed here.
        let err = unsafe { fx_store_get(self.raw, k.as_ptr(), &mut data, &mut n) };
        check(err, &format!("store get {key}"))?;
        let v = unsafe { std::slice::from_raw_parts(data, n) }.to_vec();
        unsafe { fx_shim_free(data as *mut c_char) };
        Ok(v)
    }
}

impl Drop for TcpStore {
    fn drop(&mut self) {
        // SAFETY: raw came from fx_store_tcp and is freed once.
        unsafe { fx_store_free(self.raw) }
    }
}

/// Whether this build has the NCCL process group.
pub fn nccl_built() -> bool {
    cfg!(fx_nccl)
}

/// A c10d process group (Gloo or NCCL): the ranks of one job and their collectives.
pub struct ProcessGroup {
    raw: *mut c_void,
    world: usize,
    timeout: Duration,
}

// SAFETY: c10d backends are used from one thread at a time by fx (the trainer's); moving the
// handle between threads is what torch.distributed does too.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the Gloo group of `world` ranks as `rank`, its transport bound to `hostname` (an
    /// address of this node the other ranks can reach; `if:NAME` an interface; empty: this
    /// machine's name resolved, as torch.distributed does). Collectives fail after `timeout`.
    pub fn gloo(
        store: &TcpStore,
        rank: usize,
        world: usize,
        hostname: &str,
        timeout: Duration,
    ) -> Result<ProcessGroup> {
        let h = c_string(hostname)?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: the store handle is live; h outlives the call.
        let err = unsafe { fx_pg_gloo(store.raw, rank as i32, world as i32, millis(timeout), h.as_ptr(), &mut raw) };
        check(err, &format!("c10d Gloo group (rank {rank} of {world})"))?;
        Ok(ProcessGroup { raw, world, timeout })
    }

    /// Joins the NCCL group of `world` ranks as `rank` (CUDA tensors, reduced in device memory;
    /// torch.distributed's backend for GPUs). An error where fx was built without NCCL (see
    /// [`nccl_built`]) or the machine has no GPU.
    pub fn nccl(store: &TcpStore, rank: usize, world: usize, timeout: Duration) -> Result<ProcessGroup> {
        #[cfg(fx_nccl)]
        {
            let mut raw = std::ptr::null_mut();
            // SAFETY: the store handle is live; raw is written on success only.
            let err = unsafe { fx_pg_nccl(store.raw, rank as i32, world as i32, millis(timeout), &mut raw) };
            check(err, &format!("c10d NCCL group (rank {rank} of {world})"))?;
            Ok(ProcessGroup { raw, world, timeout })
        }
        #[cfg(not(fx_nccl))]
        {
            let _ = (store, timeout);
            anyhow::bail!(
                "c10d NCCL group (rank {rank} of {world}): this fx was built without NCCL (its libtorch lacks CUDA or \
                 the CUDA headers were missing at build time: run `make setup`)"
            )
        }
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// Each tensor becomes its sum over the ranks (in place; tensors of one dtype and device,
    /// reduced in 25 MB buckets).
    pub fn all_reduce_sum(&self, ts: &[&Tensor]) -> Result<()> {
        if ts.is_empty() {
            return Ok(());
        }
        let p = ptrs(ts);
        // SAFETY: the tensors outlive the call.
        check(unsafe { fx_pg_allreduce_sum(self.raw, p.as_ptr(), p.len(), millis(self.timeout)) }, "c10d all_reduce")
    }

    /// Every rank's tensors become rank `root`'s (in place).
    pub fn broadcast(&self, ts: &[&Tensor], root: usize) -> Result<()> {
        if ts.is_empty() {
            return Ok(());
        }
        let p = ptrs(ts);
        // SAFETY: the tensors outlive the call.
        check(
            unsafe { fx_pg_broadcast(self.raw, p.as_ptr(), p.len(), root as i32, millis(self.timeout)) },
            "c10d broadcast",
        )
    }

    /// Rank r's `t` (same shape and dtype on every rank) for r in 0..world.
    pub fn all_gather(&self, t: &Tensor) -> Result<Vec<Tensor>> {
        let out: Vec<Tensor> = (0..self.world).map(|_| t.empty_like()).collect();
        let p: Vec<*mut c_void> = out.iter().map(ptr).collect();
        // SAFETY: input and outputs outlive the call.
        check(
            unsafe { fx_pg_allgather(self.raw, ptr(t), p.as_ptr(), self.world, millis(self.timeout)) },
            "c10d all_gather",
        )?;
        Ok(out)
    }

    /// The gradients of `loss` with respect to `params`, averaged over the ranks, their exchange
    /// overlapping the backward (DDP's reducer): buckets of `bucket_bytes` in reverse parameter
    /// order, each all-reduced as soon as the backward has produced its gradients, in the same
    /// order on every rank. `loss` None: a rank with nothing to back-propagate (it sends zeros).
    /// A gradient is undefined only where no rank's loss reached the parameter. Also returns how
    /// many buckets started before the backward ended (the overlap; all but the flags bucket).
    pub fn grad_average(
        &self,
        loss: Option<&Tensor>,
        params: &[&Tensor],
        bucket_bytes: usize,
    ) -> Result<(Vec<Tensor>, usize)> {
        let p = ptrs(params);
        let mut out = vec![std::ptr::null_mut::<c_void>(); params.len()];
        let l = loss.map_or(std::ptr::null_mut(), ptr);
        let mut overlapped = 0i64;
        // SAFETY: loss and params outlive the call; on success every out[i] is a new at::Tensor*
        // (undefined or not) whose ownership passes to tch.
        let err = unsafe {
            fx_pg_grad_average(
                self.raw,
                l,
                p.as_ptr(),
                p.len(),
                self.world as i64,
                bucket_bytes.min(i64::MAX as usize) as i64,
                millis(self.timeout),
                out.as_mut_ptr(),
                &mut overlapped,
            )
        };
        // Owned either way, so that an error frees what was built before it.
        let grads: Vec<Tensor> = out
            .into_iter()
            .filter(|o| !o.is_null())
            .map(|o| unsafe { Tensor::from_ptr(o as *mut torch_sys::C_tensor) })
            .collect();
        check(err, "c10d all_reduce of the gradients")?;
        Ok((grads, overlapped as usize))
    }

    /// A new tensor, `t` summed over the ranks, that autograd differentiates: its backward sums
    /// the incoming gradient over the ranks (one more collective, inside `backward`). Every rank
    /// must run the same graph, so that these backward collectives pair up in order.
    pub fn sum_differentiable(&self, t: &Tensor) -> Result<Tensor> {
        let mut out = std::ptr::null_mut();
        // SAFETY: the input outlives the call; on success `out` is a new at::Tensor* whose
        // ownership passes to tch (freed by Tensor's Drop). The group handle stays live while the
        // backward may run: it is owned by the job (World), which outlives every step.
        check(
            unsafe { fx_pg_sum_differentiable(self.raw, ptr(t), millis(self.timeout), &mut out) },
            "c10d all_reduce (differentiable)",
        )?;
        Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
    }

    /// Returns when every rank has called it (or fails after the timeout).
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group handle is live.
        check(unsafe { fx_pg_barrier(self.raw, millis(self.timeout)) }, "c10d barrier")
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: raw came from fx_pg_gloo or fx_pg_nccl and is freed once.
        unsafe { fx_pg_free(self.raw) }
    }
}
