//! The resume-point port: where a settlement listener keeps how far it has recorded.

use super::StoreError;
use crate::backend::ResumePoint;

/// Durable resume points, one per listener name (for example `lnbits:<wallet>`).
///
/// Contract:
/// * [`resume_point`](Self::resume_point) answers the last point saved under `name`, or
///   `None` if none was;
/// * [`save_resume_point`](Self::save_resume_point) is a compare-and-swap: it stores `new`
///   only if the stored point is still `expected` (`None`: no point stored yet), atomically
///   across threads, processes and servers sharing the store, and otherwise writes nothing
///   and returns [`StoreError::Conflict`]. A listener saves a point only after recording
///   every settlement before it, so a conflict means another listener got at least as far;
/// * a saved point survives restarts of the application (not of a [`MemoryStore`](super::MemoryStore)).
pub trait ResumeStore: Send + Sync {
    /// The point last saved under `name`.
    fn resume_point(&self, name: &str) -> Result<Option<ResumePoint>, StoreError>;

    /// Saves `new` under `name` if the stored point is `expected`, else
    /// [`StoreError::Conflict`].
    fn save_resume_point(
        &self,
        name: &str,
        expected: Option<&ResumePoint>,
        new: &ResumePoint,
    ) -> Result<(), StoreError>;

    /// Up to `limit` points whose names start with `prefix`, in name order, after the name
    /// `after` (from the first when `None`): for sweeping a family of points, such as the
    /// HTTP layer's expired idempotency records.
    fn resume_points(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ResumePoint)>, StoreError>;

    /// Deletes the point under `name` if the stored one is still `expected`, atomically;
    /// otherwise deletes nothing and returns [`StoreError::Conflict`].
    fn delete_resume_point(&self, name: &str, expected: &ResumePoint) -> Result<(), StoreError>;
}

forward_port!(ResumeStore {
    fn resume_point(&self, name: &str) -> Result<Option<ResumePoint>, StoreError>;
    fn save_resume_point(&self, name: &str, expected: Option<&ResumePoint>, new: &ResumePoint) -> Result<(), StoreError>;
    fn resume_points(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, ResumePoint)>, StoreError>;
    fn delete_resume_point(&self, name: &str, expected: &ResumePoint) -> Result<(), StoreError>;
});
