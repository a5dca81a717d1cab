//! [`AddressIndex`] for [`SqliteStore`]: derivation indexes reserved durably, one row per
//! descriptor.

use super::{SqliteStore, backend};
use crate::request::{AddressIndex, RequestError};

impl AddressIndex for SqliteStore {
    /// One `BEGIN IMMEDIATE` transaction running a single upsert that increments the
    /// descriptor's counter and returns the value it had: the write lock serialises
    /// reservations of every connection to the file, in this process or another, and the
    /// counter is committed before the index is returned, so no index is handed out twice,
    /// even across restarts. Like [`MemoryAddressIndex`](crate::request::MemoryAddressIndex),
    /// the last index (`u32::MAX`) is never returned: the indexes are then exhausted.
    fn reserve(&self, descriptor: &str) -> Result<u32, RequestError> {
        let index: i64 = self
            .write(|tx| {
                tx.prepare_cached(
                    "INSERT INTO address_index (descriptor, next) VALUES (?1, 1)
                     ON CONFLICT (descriptor) DO UPDATE SET next = next + 1
                     RETURNING next - 1",
                )
                .and_then(|mut stmt| stmt.query_row([descriptor], |row| row.get(0)))
                .map_err(backend)
            })
            .map_err(super::super::index_backend)?;
        // The last index is never handed out (the counter would have to pass u32::MAX).
        u32::try_from(index)
            .ok()
            .filter(|i| *i < u32::MAX)
            .ok_or(RequestError::IndexesExhausted)
    }

    /// One read of the descriptor's counter: the index before it, if any was reserved.
    fn reserved(&self, descriptor: &str) -> Result<Option<u32>, RequestError> {
        let next: Option<i64> = self
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT next FROM address_index WHERE descriptor = ?1")
                    .map_err(backend)?;
                let mut rows = stmt.query([descriptor]).map_err(backend)?;
                match rows.next().map_err(backend)? {
                    Some(row) => row.get(0).map(Some).map_err(backend),
                    None => Ok(None),
                }
            })
            .map_err(super::super::index_backend)?;
        Ok(next.and_then(|n| u32::try_from(n - 1).ok()))
    }
}
