//! `preauth_approvals`: the services insurers granted by pre-authorisations for care here.

use medcov_store::StoreError;
use time::Date;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::preauth::Approval;

/// Replaces what a pre-authorisation grants with `approvals` (none for a denial): the latest
/// decision is the one that holds, however often it is delivered.
pub(crate) async fn replace(tx: &mut Tx, preauth: Uuid, approvals: &[Approval]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM preauth_approvals WHERE preauth_id = $1").bind(preauth).execute(&mut **tx).await?;
    for a in approvals {
        sqlx::query(
            "INSERT INTO preauth_approvals (preauth_id, service_code, hospital_id, member_number, valid_until) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (preauth_id, service_code) DO NOTHING",
        )
        .bind(a.preauth_id)
        .bind(&a.service_code)
        .bind(a.hospital_id)
        .bind(&a.member_number)
        .bind(a.valid_until)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What the pre-authorisation `preauth` grants.
pub(crate) async fn of(pool: &Pool, preauth: Uuid) -> Result<Vec<Approval>, StoreError> {
    let rows: Vec<(Uuid, String, Uuid, String, Option<Date>)> = sqlx::query_as(
        "SELECT preauth_id, service_code, hospital_id, member_number, valid_until FROM preauth_approvals \
         WHERE preauth_id = $1",
    )
    .bind(preauth)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(preauth_id, service_code, hospital_id, member_number, valid_until)| Approval {
            preauth_id,
            service_code,
            hospital_id,
            member_number,
            valid_until,
        })
        .collect())
}
