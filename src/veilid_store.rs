//! A [`Store`] over Veilid's `TableStore` (what Veilid apps already use):
//! one table database with a column per [`Table`]. Veilid encrypts table
//! databases at rest with the device's protected-store key, so flow state and
//! contacts (which hold secrets) are not stored in the clear.

use veilid_core as vc;

use crate::store::{Entries, Store, Table};

/// Error of the Veilid table store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("veilid table store: {0}")]
pub struct VeilidStoreError(String);

fn err(e: vc::VeilidAPIError) -> VeilidStoreError {
    VeilidStoreError(e.to_string())
}

fn column(t: Table) -> u32 {
    Table::ALL.iter().position(|x| *x == t).map_or(0, |i| i as u32)
}

/// A store in a Veilid table database.
#[derive(Clone)]
pub struct VeilidTableStore {
    db: vc::TableDB,
}

impl core::fmt::Debug for VeilidTableStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VeilidTableStore").field("table", &self.db.table_name()).finish()
    }
}

impl VeilidTableStore {
    /// Opens (creating) the table database `name` on a running node.
    pub async fn open(api: &vc::VeilidAPI, name: &str) -> Result<Self, VeilidStoreError> {
        let db = api.open_table_db(name, Table::ALL.len() as u32).await.map_err(err)?;
        Ok(Self { db })
    }
}

impl Store for VeilidTableStore {
    type Error = VeilidStoreError;

    async fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Self::Error> {
        self.db
            .store(column(table), vc::bytes::Bytes::copy_from_slice(key), vc::bytes::Bytes::copy_from_slice(value))
            .await
            .map_err(err)
    }
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        let v = self.db.load(column(table), vc::bytes::Bytes::copy_from_slice(key)).await.map_err(err)?;
        Ok(v.map(|b| b.to_vec()))
    }
    async fn delete(&self, table: Table, key: &[u8]) -> Result<(), Self::Error> {
        self.db.delete(column(table), vc::bytes::Bytes::copy_from_slice(key)).await.map_err(err).map(|_| ())
    }
    async fn list(&self, table: Table) -> Result<Entries, Self::Error> {
        let col = column(table);
        let mut out = Vec::new();
        for k in self.db.get_keys(col).await.map_err(err)? {
            if let Some(v) = self.db.load(col, k.clone()).await.map_err(err)? {
                out.push((k.to_vec(), v.to_vec()));
            }
        }
        out.sort();
        Ok(out)
    }
}
