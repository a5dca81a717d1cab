//! The memory store's resume points (listeners, leases, the HTTP layer's idempotency
//! records).

use super::MemoryStore;
use crate::store::StoreError;

impl crate::store::ResumeStore for MemoryStore {
    fn resume_point(&self, name: &str) -> Result<Option<crate::backend::ResumePoint>, StoreError> {
        Ok(self.lock()?.resume_points.get(name).cloned())
    }

    fn save_resume_point(
        &self,
        name: &str,
        expected: Option<&crate::backend::ResumePoint>,
        new: &crate::backend::ResumePoint,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.resume_points.get(name) != expected {
            return Err(StoreError::Conflict);
        }
        inner.resume_points.insert(name.to_owned(), new.clone());
        Ok(())
    }

    fn resume_points(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, crate::backend::ResumePoint)>, StoreError> {
        let inner = self.lock()?;
        let mut points: Vec<(String, crate::backend::ResumePoint)> = inner
            .resume_points
            .iter()
            .filter(|(name, _)| name.starts_with(prefix) && after.is_none_or(|a| name.as_str() > a))
            .map(|(name, point)| (name.clone(), point.clone()))
            .collect();
        points.sort_by(|a, b| a.0.cmp(&b.0));
        points.truncate(limit);
        Ok(points)
    }

    fn delete_resume_point(
        &self,
        name: &str,
        expected: &crate::backend::ResumePoint,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.resume_points.get(name) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        inner.resume_points.remove(name);
        Ok(())
    }
}
