//! [`ResumeStore`] for [`PostgresStore`]: one row per listener name.

use super::ops::{Op, Out};
use super::{PostgresStore, unexpected};
use crate::backend::ResumePoint;
use crate::store::{ResumeStore, StoreError};

impl ResumeStore for PostgresStore {
    fn resume_point(&self, name: &str) -> Result<Option<ResumePoint>, StoreError> {
        match self.call(Op::ResumePoint(name.to_owned()))? {
            Out::Text(point) => Ok(point.map(ResumePoint::new)),
            _ => Err(unexpected()),
        }
    }

    /// One statement: an insert that does nothing if the name exists (no point expected),
    /// or an update of the expected point; no row changed is a conflict. Like a commit, it
    /// is not run again once its outcome is unknown (a lost connection is a retryable
    /// error; the listener's next pass reads where the point is).
    fn save_resume_point(
        &self,
        name: &str,
        expected: Option<&ResumePoint>,
        new: &ResumePoint,
    ) -> Result<(), StoreError> {
        let op = Op::SaveResumePoint {
            name: name.to_owned(),
            expected: expected.map(|p| p.as_str().to_owned()),
            new: new.as_str().to_owned(),
        };
        match self.call(op)? {
            Out::Changed(1) => Ok(()),
            Out::Changed(_) => Err(StoreError::Conflict),
            _ => Err(unexpected()),
        }
    }

    fn resume_points(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ResumePoint)>, StoreError> {
        let from = after.filter(|a| *a >= prefix).unwrap_or(prefix).to_owned();
        let inclusive = after.is_none_or(|a| a < prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self.call(Op::ResumePoints(from, inclusive, prefix.to_owned(), limit))? {
            Out::Pairs(rows) => Ok(rows
                .into_iter()
                .map(|(name, point)| (name, ResumePoint::new(point)))
                .collect()),
            _ => Err(unexpected()),
        }
    }

    fn delete_resume_point(&self, name: &str, expected: &ResumePoint) -> Result<(), StoreError> {
        let op = Op::DeleteResumePoint(name.to_owned(), expected.as_str().to_owned());
        match self.call(op)? {
            Out::Changed(1) => Ok(()),
            Out::Changed(_) => Err(StoreError::Conflict),
            _ => Err(unexpected()),
        }
    }
}
