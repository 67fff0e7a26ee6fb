//! Data-parallel training through PyTorch's c10d (see fx-shim's `c10d`): who this process is in
//! the job (from torchrun's or Slurm's variables), the rendezvous, and the few collectives the
//! trainer needs. Semantics are those of one process with the global batch (see `train.rs`):
//! every rank holds the same weights, takes its slice of each global batch and applies the same
//! averaged gradients.

use anyhow::{anyhow, bail, Context, Result};
use fx_shim::c10d::{ProcessGroup, TcpStore};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tch::{Device, Kind, Tensor};

/// How long a collective (and the rendezvous) may wait for the other ranks before failing:
/// `FX_DIST_TIMEOUT_S`, default 1800 s (torch.distributed's default for Gloo and NCCL).
pub const TIMEOUT_VAR: &str = "FX_DIST_TIMEOUT_S";

/// The size of the gradient buckets whose exchange overlaps the backward: `FX_DIST_BUCKET_MB`,
/// default 25 (DDP's `bucket_cap_mb`). Smaller buckets start sooner; larger ones cost fewer calls.
pub const BUCKET_VAR: &str = "FX_DIST_BUCKET_MB";

/// Where this process sits in a job, as a launcher describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendezvous {
    pub master_addr: String,
    pub master_port: u16,
    pub rank: usize,
    pub world: usize,
    /// Index of this process on its node: its GPU.
    pub local_rank: usize,
    /// Processes on this node (LOCAL_WORLD_SIZE, or Slurm's tasks per node); 1 when unsaid.
    pub local_size: usize,
    /// "torchrun" or "slurm": which variables said so.
    pub source: &'static str,
    pub timeout: Duration,
    /// Gradient bucket size in bytes (`FX_DIST_BUCKET_MB`).
    pub bucket_bytes: usize,
}

/// The default port of torch.distributed's store.
pub const DEFAULT_PORT: u16 = 29500;

impl Rendezvous {
    /// The job this process belongs to: torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
    /// MASTER_ADDR, MASTER_PORT), else Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, the
    /// first host of SLURM_JOB_NODELIST; MASTER_ADDR/MASTER_PORT still win when set). None when
    /// neither describes more than one process.
    pub fn from_env() -> Result<Option<Rendezvous>> {
        Self::from_vars(&|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<Rendezvous>> {
        let number = |k: &str| -> Result<Option<usize>> {
            var(k)
                .map(|v| v.trim().parse::<usize>().map_err(|_| anyhow!("{k}={v:?} is not a whole number")))
                .transpose()
        };
        let timeout = match var(TIMEOUT_VAR) {
            Some(v) => Duration::from_secs_f64(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0)
                    .ok_or_else(|| anyhow!("{TIMEOUT_VAR}={v:?} is not a positive number of seconds"))?,
            ),
            None => Duration::from_secs(1800),
        };
        let bucket_bytes = match var(BUCKET_VAR) {
            Some(v) => {
                let mb = v.trim().parse::<f64>().ok().filter(|m| *m > 0.0 && *m <= 1e6);
                (mb.ok_or_else(|| anyhow!("{BUCKET_VAR}={v:?} is not a positive number of megabytes"))? * 1048576.0)
                    as usize
            }
            None => 25 << 20,
        };
        let port = || -> Result<u16> {
            match var("MASTER_PORT") {
                Some(p) => p.trim().parse().map_err(|_| anyhow!("MASTER_PORT={p:?} is not a port number")),
                None => Ok(DEFAULT_PORT),
            }
        };
        let (rank, world, local_rank, addr, source) = if let Some(world) = number("WORLD_SIZE")? {
            let rank = number("RANK")?.ok_or_else(|| anyhow!("WORLD_SIZE is set but RANK is not"))?;
            let addr = var("MASTER_ADDR").ok_or_else(|| anyhow!("WORLD_SIZE is set but MASTER_ADDR is not"))?;
            (rank, world, number("LOCAL_RANK")?.unwrap_or(0), addr, "torchrun")
        } else if let Some(world) = number("SLURM_NTASKS")? {
            let rank = number("SLURM_PROCID")?.ok_or_else(|| anyhow!("SLURM_NTASKS is set but SLURM_PROCID is not"))?;
            let addr = match var("MASTER_ADDR") {
                Some(a) => a,
                None => first_host(
                    &var("SLURM_JOB_NODELIST")
                        .or_else(|| var("SLURM_NODELIST"))
                        .ok_or_else(|| anyhow!("SLURM_NTASKS is set but SLURM_JOB_NODELIST is not"))?,
                )?,
            };
            (rank, world, number("SLURM_LOCALID")?.unwrap_or(0), addr, "slurm")
        } else {
            return Ok(None);
        };
        if world <= 1 {
            return Ok(None);
        }
        // torchrun's LOCAL_WORLD_SIZE; Slurm writes tasks per node as "8" or "8(x2)".
        let local_size = var("LOCAL_WORLD_SIZE")
            .or_else(|| var("SLURM_NTASKS_PER_NODE"))
            .or_else(|| var("SLURM_TASKS_PER_NODE"))
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<usize>().ok()))
            .unwrap_or(1)
            .max(1);
        if rank >= world {
            bail!("rank {rank} is not below the world size {world} ({source} variables)");
        }
        Ok(Some(Rendezvous {
            master_addr: addr,
            master_port: port()?,
            rank,
            world,
            local_rank,
            local_size,
            source,
            timeout,
            bucket_bytes,
        }))
    }
}

/// The first host of a Slurm node list: `gpu[03-05,9],login1` → `gpu03`.
pub fn first_host(list: &str) -> Result<String> {
    let list = list.trim();
    let end = list.find([',', '[']).unwrap_or(list.len());
    let prefix = &list[..end];
    if list[end..].starts_with('[') {
        let inner = &list[end + 1..list.find(']').ok_or_else(|| anyhow!("node list {list:?}: unclosed ["))?];
        let first = inner.split([',', '-']).next().unwrap_or("");
        return Ok(format!("{prefix}{first}"));
    }
    if prefix.is_empty() {
        bail!("node list {list:?} names no host");
    }
    Ok(prefix.to_string())
}

/// This process's membership of a running job.
pub struct World {
    pub rank: usize,
    pub size: usize,
    pub local_rank: usize,
    pub local_size: usize,
    /// Gradient bucket size in bytes.
    bucket_bytes: usize,
    store: Arc<TcpStore>,
    /// Collectives this rank has entered; published with a time stamp every second under
    /// `fx/alive/<rank>`, so that after a failed collective a rank can say which rank is dead,
    /// frozen or behind.
    entered: Arc<AtomicU64>,
    heartbeat_stop: Arc<AtomicBool>,
    /// Gloo: host tensors, the barrier, and CUDA tensors when there is no NCCL.
    group: ProcessGroup,
    /// NCCL, for CUDA tensors, where this build has it and the machine has GPUs.
    nccl: Option<ProcessGroup>,
}

impl World {
    /// The rendezvous at MASTER_ADDR:MASTER_PORT (rank 0 serves the store) and the Gloo group.
    pub fn join(r: &Rendezvous) -> Result<World> {
        let store = TcpStore::connect(&r.master_addr, r.master_port, r.rank == 0, r.world, r.timeout)
            .with_context(|| format!("rank {} of {} ({} variables)", r.rank, r.world, r.source))?;
        // The address the others reach this rank at: the interface GLOO_SOCKET_IFNAME names (as
        // torch.distributed), loopback for a job on one node, else this machine's name resolved
        // by c10d (torch.distributed's default device).
        let local = matches!(r.master_addr.as_str(), "127.0.0.1" | "localhost" | "::1");
        let host = match std::env::var("GLOO_SOCKET_IFNAME") {
            Ok(i) if !i.trim().is_empty() => format!("if:{}", i.trim().split(',').next().unwrap_or("")),
            _ if local => "127.0.0.1".to_string(),
            _ => String::new(),
        };
        let group = ProcessGroup::gloo(&store, r.rank, r.world, &host, r.timeout)
            .with_context(|| format!("rank {} of {}", r.rank, r.world))?;
        // torch.distributed's "cpu:gloo,cuda:nccl": both groups, each tensor to the one for its
        // device. Every rank decides alike (same build, GPUs on every node of a job).
        let nccl = if fx_shim::c10d::nccl_built() && tch::Cuda::is_available() {
            Some(
                ProcessGroup::nccl(&store, r.rank, r.world, r.timeout)
                    .with_context(|| format!("rank {} of {}", r.rank, r.world))?,
            )
        } else {
            None
        };
        let store = Arc::new(store);
        let (entered, heartbeat_stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        {
            let (store, entered, stop, rank) = (store.clone(), entered.clone(), heartbeat_stop.clone(), r.rank);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let beat = format!("{} {}", entered.load(Ordering::SeqCst), unix_ms());
                    if store.set(&format!("fx/alive/{rank}"), beat.as_bytes()).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
        Ok(World {
            rank: r.rank,
            size: r.world,
            local_rank: r.local_rank,
            local_size: r.local_size,
            bucket_bytes: r.bucket_bytes,
            store,
            entered,
            heartbeat_stop,
            group,
            nccl,
        })
    }

    /// Rank 0 writes the run directory; the others only read it.
    pub fn is_writer(&self) -> bool {
        self.rank == 0
    }

    /// Rank 0 names the run directory (the one it created); every rank returns it.
    pub fn share_run_dir(&self, dir: Option<&Path>) -> Result<PathBuf> {
        if let Some(d) = dir.filter(|_| self.rank == 0) {
            self.store.set("fx/run_dir", d.display().to_string().as_bytes())?;
        }
        let v = self.store.get("fx/run_dir")?;
        Ok(PathBuf::from(String::from_utf8_lossy(&v).into_owned()))
    }

    /// Rank 0's values in every rank's tensors (weights at the start, BatchNorm statistics).
    pub fn broadcast(&self, ts: &[Tensor]) -> Result<()> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.by_group(ts, |g, h| g.broadcast(h, 0)).map_err(|e| self.failed(e))
    }

    /// Each tensor summed over the ranks, in place.
    pub fn sum(&self, ts: &[Tensor]) -> Result<()> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.by_group(ts, |g, h| g.all_reduce_sum(h)).map_err(|e| self.failed(e))
    }

    /// A new tensor, `t` summed over the ranks, whose backward sums its gradient over the ranks
    /// (SyncBatchNorm's statistics). Every rank must call it at the same point of the same graph.
    pub fn sum_differentiable(&self, t: &Tensor) -> Result<Tensor> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let summed = if t.device() == Device::Cpu {
            self.group.sum_differentiable(t)
        } else if let Some(nccl) = &self.nccl {
            nccl.sum_differentiable(t)
        } else {
            // Gloo reduces host tensors: the copies are differentiable, so the backward's
            // gradient takes the same way back.
            self.group.sum_differentiable(&t.to_device(Device::Cpu)).map(|s| s.to_device(t.device()))
        };
        summed.map_err(|e| self.failed(e))
    }

    /// "nccl" when CUDA tensors go through NCCL, else "gloo".
    pub fn gpu_backend(&self) -> &'static str {
        if self.nccl.is_some() {
            "nccl"
        } else {
            "gloo"
        }
    }

    pub fn barrier(&self) -> Result<()> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.group.barrier().map_err(|e| self.failed(e))
    }

    fn failed(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "rank {} of {}: a collective failed ({}); the run resumes from its last checkpoint with --resume",
            self.rank,
            self.size,
            self.diagnose()
        ))
    }

    /// Which ranks are dead, frozen or behind, from their heartbeats in the store: read twice,
    /// 2.5 s apart (a live rank beats every second).
    fn diagnose(&self) -> String {
        // The store is rank 0's: if it is gone, say so rather than wait the full timeout.
        let _ = self.store.set_timeout(Duration::from_secs(5));
        let me = self.entered.load(Ordering::SeqCst);
        let others: Vec<usize> = (0..self.size).filter(|r| *r != self.rank).collect();
        let read = |r: usize| -> Result<Option<(u64, u64)>> {
            let key = format!("fx/alive/{r}");
            if !self.store.check(&key)? {
                return Ok(None);
            }
            let beat = String::from_utf8_lossy(&self.store.get(&key)?).into_owned();
            let mut it = beat.split(' ').map(|x| x.parse::<u64>().unwrap_or(0));
            Ok(Some((it.next().unwrap_or(0), it.next().unwrap_or(0))))
        };
        let unreachable = "the c10d store, served by rank 0, does not answer: rank 0 has stopped";
        let Ok(first) = others.iter().map(|r| read(*r)).collect::<Result<Vec<_>>>() else { return unreachable.into() };
        std::thread::sleep(Duration::from_millis(2500));
        let Ok(second) = others.iter().map(|r| read(*r)).collect::<Result<Vec<_>>>() else { return unreachable.into() };
        let now = unix_ms();
        let mut notes = Vec::new();
        for ((r, a), b) in others.iter().zip(&first).zip(&second) {
            match (a, b) {
                (_, None) => notes.push(format!("rank {r} never reported")),
                (Some((_, t0)), Some((_, t1))) if t0 == t1 => notes.push(format!(
                    "rank {r} stopped reporting {:.0} s ago: it died or is frozen",
                    now.saturating_sub(*t1) as f64 / 1000.0
                )),
                (_, Some((count, _))) if *count < me => notes.push(format!(
                    "rank {r} is alive but behind (at collective {count}, this rank at {me}): it hangs or is slow"
                )),
                _ => {}
            }
        }
        if notes.is_empty() {
            "every other rank still reports; the network or a peer's connection failed".into()
        } else {
            notes.join("; ")
        }
    }

    /// Runs a collective per (device, dtype) bucket of tensors: host tensors through Gloo, CUDA
    /// tensors through NCCL in device memory, or through Gloo by way of a host copy without NCCL.
    fn by_group(&self, ts: &[Tensor], f: impl Fn(&ProcessGroup, &[&Tensor]) -> Result<()>) -> Result<()> {
        let mut buckets: std::collections::BTreeMap<String, Vec<&Tensor>> = Default::default();
        for t in ts.iter().filter(|t| t.defined()) {
            buckets.entry(format!("{:?} {:?}", t.device(), t.kind())).or_default().push(t);
        }
        for group in buckets.values() {
            if group[0].device() == Device::Cpu {
                f(&self.group, group)?;
            } else if let Some(nccl) = &self.nccl {
                f(nccl, group)?;
            } else {
                let host: Vec<Tensor> = group.iter().map(|t| t.to_device(Device::Cpu)).collect();
                f(&self.group, &host.iter().collect::<Vec<_>>())?;
                for (t, h) in group.iter().zip(&host) {
                    let mut t = (*t).shallow_clone();
                    tch::no_grad(|| t.copy_(h));
                }
            }
        }
        Ok(())
    }
}

/// This rank's part in sums over a job's global batch (all ranks' slices), which autograd
/// differentiates: the statistics of SyncBatchNorm and the pooled soft Dice, so that a job computes
/// them as one process does on the global batch.
pub struct GlobalBatch<'a> {
    /// Sums a tensor over the ranks, differentiably ([`World::sum_differentiable`]).
    pub sum: &'a dyn Fn(&Tensor) -> Result<Tensor>,
    /// 1 for a rank's own slice; 0 for the stand-in batch a rank with an empty slice runs so that
    /// it takes part in every collective of the step without adding to the sums.
    pub weight: f64,
}

impl GlobalBatch<'_> {
    /// `local` (this rank's sums) summed over the job.
    pub fn sum(&self, local: &Tensor) -> Result<Tensor> {
        (self.sum)(&(local * self.weight))
    }
}

/// The gradients of one step's `loss` averaged over the ranks: what one process computing the
/// global batch's loss would get. Each rank's loss was weighted by its share of the global batch
/// (`n_rank × world / n_global`), so the mean of the ranks' gradients is the global gradient. The
/// exchange overlaps the backward, in buckets (25 MB, `FX_DIST_BUCKET_MB`) started as the backward fills them (DDP's
/// reducer, [`ProcessGroup::grad_average`]). `loss` None: a rank with an empty slice, which
/// contributes zeros. A parameter's gradient stays undefined (not stepped) only when no rank's
/// loss reached it. CUDA gradients go through NCCL, else through Gloo (which all-reduces CUDA
/// tensors itself).
pub fn averaged_gradients(
    world: &World,
    loss: Option<&Tensor>,
    params: &[(String, crate::group::Group, Tensor)],
) -> Result<Vec<Tensor>> {
    world.entered.fetch_add(1, Ordering::SeqCst);
    let ps: Vec<&Tensor> = params.iter().map(|(_, _, p)| p).collect();
    let on_gpu = ps.first().is_some_and(|p| p.device() != Device::Cpu);
    let group = match &world.nccl {
        Some(nccl) if on_gpu => nccl,
        _ => &world.group,
    };
    let (grads, _overlapped) = group.grad_average(loss, &ps, world.bucket_bytes).map_err(|e| world.failed(e))?;
    Ok(grads)
}

/// Runs `forward` (`n_outputs` tensors per item) over `items` and hands each item with its
/// outputs, in order, to `each`. In a job the items are dealt round-robin: each rank runs the
/// forward of its own and every rank receives all outputs — per round of `world` items one
/// all-reduce of the outputs' shapes, then one of the outputs, every rank sending zeros but for
/// its own item (an exact gather: x + 0 = x). So a sharded evaluation computes one process's
/// metrics at a world-th of its forward passes. Outputs reach `each` as f32 on the CPU.
pub fn gathered<B: ?Sized>(
    world: Option<&World>,
    items: &[&B],
    n_outputs: usize,
    forward: impl Fn(&B) -> Result<Vec<Tensor>>,
    mut each: impl FnMut(&B, Vec<Tensor>) -> Result<()>,
) -> Result<()> {
    let host = |outs: Vec<Tensor>| -> Vec<Tensor> {
        outs.into_iter().map(|t| t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous()).collect()
    };
    let Some(w) = world else {
        for b in items {
            each(b, host(forward(b)?))?;
        }
        return Ok(());
    };
    const MAX_DIMS: usize = 7;
    for round in items.chunks(w.size) {
        let mine = match round.get(w.rank) {
            Some(b) => host(forward(b)?),
            None => Vec::new(),
        };
        if round.get(w.rank).is_some() && mine.len() != n_outputs {
            bail!("{} outputs where {n_outputs} were declared", mine.len());
        }
        // (rank, output) → [ndim, dims…]
        let mut shapes = vec![0i64; w.size * n_outputs * (MAX_DIMS + 1)];
        for (k, t) in mine.iter().enumerate() {
            let dims = t.size();
            if dims.len() > MAX_DIMS {
                bail!("an output of {} dimensions (at most {MAX_DIMS})", dims.len());
            }
            let at = (w.rank * n_outputs + k) * (MAX_DIMS + 1);
            shapes[at] = dims.len() as i64;
            shapes[at + 1..at + 1 + dims.len()].copy_from_slice(&dims);
        }
        let shapes_t = Tensor::from_slice(&shapes);
        w.sum(std::slice::from_ref(&shapes_t))?;
        let shapes = Vec::<i64>::try_from(&shapes_t)?;
        let mut all: Vec<Tensor> = Vec::with_capacity(round.len() * n_outputs);
        for owner in 0..round.len() {
            if owner == w.rank {
                all.extend(mine.iter().map(|t| t.shallow_clone()));
                continue;
            }
            for k in 0..n_outputs {
                let at = (owner * n_outputs + k) * (MAX_DIMS + 1);
                let dims = &shapes[at + 1..at + 1 + shapes[at] as usize];
                all.push(Tensor::zeros(dims, (Kind::Float, Device::Cpu)));
            }
        }
        w.sum(&all)?;
        let mut all = all.into_iter();
        for b in round {
            each(b, all.by_ref().take(n_outputs).collect())?;
        }
    }
    Ok(())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Drop for World {
    fn drop(&mut self) {
        self.heartbeat_stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn torchrun_and_slurm_variables() {
        let r = Rendezvous::from_vars(&vars(&[
            ("WORLD_SIZE", "16"),
            ("RANK", "9"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node-a"),
            ("MASTER_PORT", "29555"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((r.rank, r.world, r.local_rank, r.master_addr.as_str(), r.master_port), (9, 16, 1, "node-a", 29555));
        assert_eq!(r.source, "torchrun");
        let s = Rendezvous::from_vars(&vars(&[
            ("SLURM_NTASKS", "16"),
            ("SLURM_PROCID", "12"),
            ("SLURM_LOCALID", "4"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
            ("SLURM_TASKS_PER_NODE", "8(x2)"),
            (TIMEOUT_VAR, "60"),
            (BUCKET_VAR, "0.5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((r.bucket_bytes, s.bucket_bytes), (25 << 20, 1 << 19));
        assert_eq!((s.rank, s.world, s.local_rank, s.local_size, s.master_addr.as_str()), (12, 16, 4, 8, "gpu07"));
        assert_eq!((s.master_port, s.source, s.timeout), (DEFAULT_PORT, "slurm", Duration::from_secs(60)));
        // One process is no job; nothing set is no job.
        assert_eq!(
            Rendezvous::from_vars(&vars(&[("SLURM_NTASKS", "1"), ("SLURM_PROCID", "0"), ("SLURM_JOB_NODELIST", "a")]))
                .unwrap(),
            None
        );
        assert_eq!(Rendezvous::from_vars(&vars(&[])).unwrap(), None);
        for (bad, says) in [
            (vec![("WORLD_SIZE", "2"), ("RANK", "x"), ("MASTER_ADDR", "a")], "RANK=\"x\""),
            (vec![("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "a")], "not below the world size"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0")], "MASTER_ADDR"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "a"), (TIMEOUT_VAR, "0")], TIMEOUT_VAR),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "a"), (BUCKET_VAR, "-1")], BUCKET_VAR),
        ] {
            let e = Rendezvous::from_vars(&vars(&bad)).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    /// Two ranks (threads of this process, Gloo on localhost) evaluating 5 items of different
    /// sizes with two outputs each receive exactly what one process computes, in order.
    #[test]
    fn gathered_outputs_equal_one_process() {
        type Got = Vec<(i64, Vec<(Vec<i64>, Vec<f32>)>)>;
        fn collect(world: Option<&World>) -> Got {
            let forward = |n: &i64| -> Result<Vec<Tensor>> {
                let x = Tensor::arange(*n * 3, (Kind::Float, Device::Cpu)).view([*n, 3]) * (*n as f64 + 0.5);
                Ok(vec![x.sin(), Tensor::from_slice(&[*n as f32; 2]).view([1, 2])])
            };
            let items: Vec<i64> = vec![3, 1, 4, 1, 5];
            let refs: Vec<&i64> = items.iter().collect();
            let mut got = Vec::new();
            gathered(world, &refs, 2, forward, |n, outs| {
                let outs = outs.iter().map(|t| (t.size(), Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap()));
                got.push((*n, outs.collect()));
                Ok(())
            })
            .unwrap();
            got
        }
        let alone = collect(None);
        assert_eq!(alone.len(), 5);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || {
                    let r = Rendezvous {
                        master_addr: "127.0.0.1".into(),
                        master_port: port,
                        rank,
                        world: 2,
                        local_rank: rank,
                        local_size: 2,
                        source: "test",
                        timeout: Duration::from_secs(30),
                        bucket_bytes: 25 << 20,
                    };
                    let w = World::join(&r).unwrap();
                    collect(Some(&w))
                })
            })
            .collect();
        for r in ranks {
            assert_eq!(r.join().unwrap(), alone);
        }
    }

    #[test]
    fn first_host_of_slurm_node_lists() {
        assert_eq!(first_host("gpu[03-05,9],login1").unwrap(), "gpu03");
        assert_eq!(first_host("a12,b7").unwrap(), "a12");
        assert_eq!(first_host("single").unwrap(), "single");
        assert_eq!(first_host("n[1,4]").unwrap(), "n1");
        assert!(first_host("").is_err());
    }
}
