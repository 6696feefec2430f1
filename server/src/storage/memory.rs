//! An in-memory [`Engine`] for unit tests and simulation only: nothing it holds survives the
//! process, so the server never uses it to serve.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use super::{BatchOp, Cf, Engine, ReadTier, Result, WriteBatch};

/// One column family's keys and values.
type Family = BTreeMap<Vec<u8>, Vec<u8>>;

/// An engine keeping every column family in a `BTreeMap`.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    cfs: RwLock<BTreeMap<Cf, Family>>,
}

impl MemoryEngine {
    /// Creates an empty engine.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for MemoryEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cfs = self.cfs.read().expect("memory engine lock poisoned");
        Ok(cfs.get(&cf).and_then(|m| m.get(key).cloned()))
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        _tier: ReadTier,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let cfs = self.cfs.read().expect("memory engine lock poisoned");
        let Some(map) = cfs.get(&cf) else {
            return Ok(());
        };
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        for (k, v) in map.range::<[u8], _>((Bound::Included(start), upper)) {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn dump(&self, cfs: &[Cf]) -> Result<Vec<super::CfEntry>> {
        let all = self.cfs.read().expect("memory engine lock poisoned");
        let mut out = Vec::new();
        for cf in cfs {
            for (k, v) in all.get(cf).into_iter().flatten() {
                out.push((*cf, k.clone(), v.clone()));
            }
        }
        Ok(out)
    }

    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<()> {
        let mut cfs = self.cfs.write().expect("memory engine lock poisoned");
        for op in batch.ops {
            match op {
                BatchOp::Put { cf, key, value } => {
                    cfs.entry(cf).or_default().insert(key, value);
                }
                BatchOp::Delete { cf, key } => {
                    cfs.entry(cf).or_default().remove(&key);
                }
                BatchOp::DeleteRange { cf, start, end } => {
                    let map = cfs.entry(cf).or_default();
                    let doomed: Vec<Vec<u8>> = map
                        .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        map.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A [`MemoryEngine`] for tests that counts its writes and can be made to fail reads of the
/// data column family.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Instrumented {
    inner: MemoryEngine,
    /// Writes so far.
    pub writes: std::sync::atomic::AtomicUsize,
    /// While set, every `get` and `scan` of [`Cf::Data`] fails.
    pub fail_data_reads: std::sync::atomic::AtomicBool,
    /// While set, every write fails (and changes nothing).
    pub fail_writes: std::sync::atomic::AtomicBool,
    /// While true, every write waits (see [`Instrumented::hold_writes`]).
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

#[cfg(test)]
impl Instrumented {
    /// Makes every write wait until `hold_writes(false)` (writes waiting then go on).
    pub fn hold_writes(&self, hold: bool) {
        *self.held.lock().expect("hold lock poisoned") = hold;
        self.released.notify_all();
    }

    fn check(&self, cf: Cf) -> Result<()> {
        let failing = self
            .fail_data_reads
            .load(std::sync::atomic::Ordering::SeqCst);
        match cf == Cf::Data && failing {
            true => Err(super::StorageError::Engine("a read failed".into())),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
impl Engine for Instrumented {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check(cf)?;
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        tier: ReadTier,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.check(cf)?;
        self.inner.scan(cf, start, end, tier, visit)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let held = self.held.lock().expect("hold lock poisoned");
        drop(
            self.released
                .wait_while(held, |held| *held)
                .expect("hold lock poisoned"),
        );
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(super::StorageError::Engine("a write failed".into()));
        }
        self.inner.write(batch, sync)
    }

    fn dump(&self, cfs: &[Cf]) -> Result<Vec<super::CfEntry>> {
        self.inner.dump(cfs)
    }
}
