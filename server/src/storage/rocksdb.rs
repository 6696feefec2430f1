//! The RocksDB [`Engine`]: one instance per server, one column family per [`Cf`].
//!
//! This is the only file in the server that names the `rocksdb` crate. Durability comes from
//! RocksDB's write-ahead log: a batch written with `sync = true` is fsynced before `write`
//! returns, so it survives `kill -9` and power loss.

use std::path::Path;

use rocksdb::{
    ColumnFamilyDescriptor, DBWithThreadMode, ErrorKind, Options, ReadOptions, ReadTier,
    SingleThreaded, WriteOptions,
};

use super::{BatchOp, Cf, Engine, Result, StorageError, WriteBatch};

type Db = DBWithThreadMode<SingleThreaded>;

/// A RocksDB instance holding every column family of a server.
pub struct RocksEngine {
    db: Db,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .finish()
    }
}

fn engine_err(e: rocksdb::Error) -> StorageError {
    StorageError::Engine(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the instance in `path`. Recovery from the write-ahead log
    /// happens here: after it returns, every batch that was synced before a crash is visible.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A torn last WAL record (a crash mid-write of an unsynced batch) is dropped, never
        // half-applied; synced records before it are kept.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        let mut cfs = Vec::with_capacity(Cf::ALL.len());
        for cf in Cf::ALL {
            let mut cf_opts = match cf {
                // A request's two dedup records go to two places in the memtable: its
                // client's records (`[kind][client id][seq]`) and the records of its
                // millisecond (`[kind][time][client id][seq]`). Both streams are written in
                // order within their first nine bytes, so an insert that starts its search
                // where the last one of the same nine bytes went finds its place at once,
                // rather than searching the whole memtable from the top. Each client and
                // each millisecond keeps such a starting point (a few hundred bytes) in the
                // memtable until it is flushed, within the memtable's size.
                Cf::Dedup => Options::default()
                    .get_options_from_string(
                        "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.9",
                    )
                    .map_err(engine_err)?,
                _ => Options::default(),
            };
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            if cf == Cf::Dedup {
                // Every write with a request id looks its id up first, and a new id is found
                // nowhere: bloom filters on the memtable and the tables answer that without
                // searching them.
                cf_opts.set_memtable_whole_key_filtering(true);
                cf_opts.set_memtable_prefix_bloom_ratio(0.1);
                let mut table = rocksdb::BlockBasedOptions::default();
                table.set_bloom_filter(10.0, false);
                cf_opts.set_block_based_table_factory(&table);
            }
            cfs.push(ColumnFamilyDescriptor::new(cf.name(), cf_opts));
        }
        let db = Db::open_cf_descriptors(&opts, path, cfs).map_err(engine_err)?;
        Ok(Self { db })
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError::Engine(format!("column family {cf} missing")))
    }
}

impl Engine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.handle(cf)?;
        self.db.get_cf(handle, key).map_err(engine_err)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        tier: super::ReadTier,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let handle = self.handle(cf)?;
        let mut ro = ReadOptions::default();
        if let Some(end) = end {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        if tier == super::ReadTier::Memory {
            ro.set_read_tier(ReadTier::BlockCache);
        }
        let mut it = self.db.raw_iterator_cf_opt(handle, ro);
        it.seek(start);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !visit(k, v) {
                return Ok(());
            }
            it.next();
        }
        match it.status() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Incomplete => Err(StorageError::WouldBlock),
            Err(e) => Err(engine_err(e)),
        }
    }

    fn dump(&self, cfs: &[Cf]) -> Result<Vec<super::CfEntry>> {
        let snapshot = self.db.snapshot();
        let mut out = Vec::new();
        for cf in cfs {
            let mut it = snapshot.raw_iterator_cf(self.handle(*cf)?);
            it.seek_to_first();
            while it.valid() {
                if let (Some(k), Some(v)) = (it.key(), it.value()) {
                    out.push((*cf, k.to_vec(), v.to_vec()));
                }
                it.next();
            }
            it.status().map_err(engine_err)?;
        }
        Ok(out)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                BatchOp::Put { cf, key, value } => wb.put_cf(self.handle(cf)?, key, value),
                BatchOp::Delete { cf, key } => wb.delete_cf(self.handle(cf)?, key),
                BatchOp::DeleteRange { cf, start, end } => {
                    wb.delete_range_cf(self.handle(cf)?, start, end)
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo).map_err(engine_err)
    }
}
