//! Human tracking numbers, one serial per year. A number is taken before the filing command runs,
//! outside its transaction, so filings never wait on each other; a failed filing leaves a gap.

use linkage_domain::values::TrackingNumber;
use sqlx::PgPool;

use crate::StoreError;

pub async fn next_tracking_number(pool: &PgPool, year: i32) -> Result<TrackingNumber, StoreError> {
    let serial: i64 = sqlx::query_scalar(
        "INSERT INTO tracking_counters (year, last_serial) VALUES ($1, 1) \
         ON CONFLICT (year) DO UPDATE SET last_serial = tracking_counters.last_serial + 1 \
         RETURNING last_serial",
    )
    .bind(year)
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::db(format!("allocating a tracking number for {year}"), e))?;
    Ok(TrackingNumber::new(year, serial as u64))
}
