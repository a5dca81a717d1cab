//! [`ResumeStore`] for [`SqliteStore`]: one row per listener name.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::backend::ResumePoint;
use crate::store::{ResumeStore, StoreError};

impl ResumeStore for SqliteStore {
    fn resume_point(&self, name: &str) -> Result<Option<ResumePoint>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT point FROM resume_points WHERE name = ?1")
                .map_err(backend)?
                .query_row([name], |row| row.get::<_, String>(0))
                .optional()
                .map(|point| point.map(ResumePoint::new))
                .map_err(backend)
        })
    }

    /// One `BEGIN IMMEDIATE` transaction running one statement: an insert that does
    /// nothing if the name exists (no point expected), or an update of the expected point.
    /// No row changed is a conflict.
    fn save_resume_point(
        &self,
        name: &str,
        expected: Option<&ResumePoint>,
        new: &ResumePoint,
    ) -> Result<(), StoreError> {
        let changed = self.write(|tx| {
            match expected {
                None => tx
                    .prepare_cached(
                        "INSERT INTO resume_points (name, point) VALUES (?1, ?2)
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .and_then(|mut stmt| stmt.execute(params![name, new.as_str()])),
                Some(old) => tx
                    .prepare_cached(
                        "UPDATE resume_points SET point = ?3 WHERE name = ?1 AND point = ?2",
                    )
                    .and_then(|mut stmt| stmt.execute(params![name, old.as_str(), new.as_str()])),
            }
            .map_err(backend)
        })?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }
}
