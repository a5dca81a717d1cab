//! The memory store's webhook endpoints and delivery log.

use super::{MemoryStore, full};
use crate::outbox::Event;
use crate::store::StoreError;

impl crate::webhook::DeliveryStore for MemoryStore {
    fn save_endpoint(&self, endpoint: &crate::webhook::Endpoint) -> Result<(), StoreError> {
        self.webhooks()?
            .endpoints
            .insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    fn endpoints(&self) -> Result<Vec<crate::webhook::Endpoint>, StoreError> {
        Ok(self.webhooks()?.endpoints.values().cloned().collect())
    }

    fn cursor(&self, endpoint: crate::id::EndpointId) -> Result<u64, StoreError> {
        Ok(self
            .webhooks()?
            .cursors
            .get(&endpoint)
            .copied()
            .unwrap_or(0))
    }

    fn schedule(
        &self,
        endpoint: crate::id::EndpointId,
        cursor: u64,
        deliveries: &[crate::webhook::Delivery],
    ) -> Result<(), StoreError> {
        let mut w = self.webhooks()?;
        for d in deliveries {
            w.deliveries
                .entry((d.endpoint, d.seq))
                .or_insert_with(|| d.clone());
        }
        let c = w.cursors.entry(endpoint).or_insert(0);
        *c = (*c).max(cursor);
        Ok(())
    }

    fn pending(&self, limit: usize) -> Result<Vec<crate::webhook::Delivery>, StoreError> {
        Ok(self
            .webhooks()?
            .deliveries
            .values()
            .filter(|d| d.status == crate::webhook::DeliveryStatus::Pending)
            .take(limit)
            .cloned()
            .collect())
    }

    fn save_delivery(&self, delivery: &crate::webhook::Delivery) -> Result<(), StoreError> {
        self.webhooks()?
            .deliveries
            .insert((delivery.endpoint, delivery.seq), delivery.clone());
        Ok(())
    }

    fn delivery(
        &self,
        endpoint: crate::id::EndpointId,
        seq: u64,
    ) -> Result<Option<crate::webhook::Delivery>, StoreError> {
        Ok(self.webhooks()?.deliveries.get(&(endpoint, seq)).cloned())
    }

    fn deliveries(
        &self,
        endpoint: crate::id::EndpointId,
    ) -> Result<Vec<crate::webhook::Delivery>, StoreError> {
        Ok(self
            .webhooks()?
            .deliveries
            .range((endpoint, 0)..=(endpoint, u64::MAX))
            .map(|(_, d)| d.clone())
            .collect())
    }

    fn disable_endpoint(
        &self,
        endpoint: &crate::webhook::Endpoint,
        event: &Event,
    ) -> Result<(), StoreError> {
        // The sessions' lock first, then the webhooks' (as `webhooks()` takes them), both
        // held: no reader sees the event without the disabled endpoint or the other way.
        let mut inner = self.lock()?;
        if inner.events.len() >= u32::MAX as usize {
            return Err(full());
        }
        let mut webhooks = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        webhooks.endpoints.insert(endpoint.id, endpoint.clone());
        inner.push_whole(event);
        Ok(())
    }
}
