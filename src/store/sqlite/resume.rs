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

    fn resume_points(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ResumePoint)>, StoreError> {
        // From the index: names from the prefix (or after `after`) on, while they start
        // with it.
        let from = after.filter(|a| *a >= prefix).unwrap_or(prefix);
        let inclusive = after.is_none_or(|a| a < prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT name, point FROM resume_points
                 WHERE (name > ?1 OR (?2 AND name = ?1)) AND substr(name, 1, length(?3)) = ?3
                 ORDER BY name LIMIT ?4",
            )
            .map_err(backend)?
            .query_map(params![from, inclusive, prefix, limit], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    ResumePoint::new(row.get::<_, String>(1)?),
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)
        })
    }

    fn delete_resume_point(&self, name: &str, expected: &ResumePoint) -> Result<(), StoreError> {
        let deleted = self.write(|tx| {
            tx.prepare_cached("DELETE FROM resume_points WHERE name = ?1 AND point = ?2")
                .and_then(|mut stmt| stmt.execute(params![name, expected.as_str()]))
                .map_err(backend)
        })?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }
}
