//! [`AddressIndex`] for [`SqliteStore`]: derivation indexes reserved durably, one row per
//! descriptor.

use super::{SqliteStore, backend};
use crate::error::Error;
use crate::request::AddressIndex;

impl AddressIndex for SqliteStore {
    /// One `BEGIN IMMEDIATE` transaction running a single upsert that increments the
    /// descriptor's counter and returns the value it had: the write lock serialises
    /// reservations of every connection to the file, in this process or another, and the
    /// counter is committed before the index is returned, so no index is handed out twice,
    /// even across restarts. Like [`MemoryAddressIndex`](crate::request::MemoryAddressIndex),
    /// the last index (`u32::MAX`) is never returned: the indexes are then exhausted.
    fn reserve(&self, descriptor: &str) -> Result<u32, Error> {
        self.write(|tx| {
            let index: i64 = tx
                .prepare_cached(
                    "INSERT INTO address_index (descriptor, next) VALUES (?1, 1)
                     ON CONFLICT (descriptor) DO UPDATE SET next = next + 1
                     RETURNING next - 1",
                )
                .and_then(|mut stmt| stmt.query_row([descriptor], |row| row.get(0)))
                .map_err(backend)?;
            // Returning the error rolls the increment back.
            u32::try_from(index)
                .ok()
                .filter(|i| *i < u32::MAX)
                .ok_or(Error::RequestMismatch("derivation indexes exhausted"))
        })
    }
}
