//! Reports: cash by day and method, receivables by age, commissions by agent.

use medcov_store::on_pool;
use serde::Serialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{BillingStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CashRow {
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    pub method: String,
    pub received: i64,
    pub refunded: i64,
    pub net: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgedRow {
    /// `patient` or `insurer`.
    pub payer: String,
    /// The patient or the insurer.
    pub party_id: Option<Uuid>,
    /// Issued 0 to 30 days before the report date.
    pub current: i64,
    pub days_31_60: i64,
    pub days_61_90: i64,
    pub over_90: i64,
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CommissionRow {
    pub agent_id: Uuid,
    pub commissions: i64,
    pub earned: i64,
    pub clawed_back: i64,
}

fn tenant_filter(column: &str, tenants: Option<&[Uuid]>, first: usize) -> String {
    match tenants {
        None => String::new(),
        Some([]) => " AND 1 = 0".to_owned(),
        Some(list) => {
            let ids: Vec<String> = (0..list.len()).map(|i| format!("${}", i + first)).collect();
            format!(" AND {column} IN ({})", ids.join(", "))
        }
    }
}

impl BillingStore {
    /// Money received and refunded per day (UTC) and method in `[from, to]`.
    pub async fn daily_cash(&self, tenants: Option<&[Uuid]>, from: Date, to: Date) -> Result<Vec<CashRow>, StoreError> {
        let start = from.midnight().assume_utc();
        let end = to.next_day().unwrap_or(to).midnight().assume_utc();
        let sql = format!(
            "SELECT created_at, method, amount, 0 FROM payments WHERE created_at >= $1 AND created_at < $2{} \
             UNION ALL SELECT created_at, method, amount, 0 FROM premium_payments WHERE created_at >= $1 AND created_at < $2{} \
             UNION ALL SELECT r.decided_at, p.method, 0, r.amount FROM refunds r JOIN payments p ON p.id = r.payment_id \
             WHERE r.status = 'completed' AND r.decided_at >= $1 AND r.decided_at < $2{} \
             UNION ALL SELECT r.decided_at, p.method, 0, r.amount FROM premium_refunds r \
             JOIN premium_payments p ON p.id = r.premium_payment_id \
             WHERE r.status = 'completed' AND r.decided_at >= $1 AND r.decided_at < $2{}",
            tenant_filter("hospital_id", tenants, 3),
            tenant_filter("insurer_id", tenants, 3),
            tenant_filter("r.hospital_id", tenants, 3),
            tenant_filter("r.insurer_id", tenants, 3)
        );
        let rows: Vec<(OffsetDateTime, String, i64, i64)> = on_pool!(&self.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(start).bind(end);
            for id in tenants.unwrap_or_default() {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await
        })?;
        let mut sums: std::collections::BTreeMap<(Date, String), (i64, i64)> = std::collections::BTreeMap::new();
        for (at, method, received, refunded) in rows {
            let entry = sums.entry((at.date(), method)).or_default();
            entry.0 += received;
            entry.1 += refunded;
        }
        Ok(sums
            .into_iter()
            .map(|((date, method), (received, refunded))| CashRow {
                date,
                method,
                received,
                refunded,
                net: received - refunded,
            })
            .collect())
    }

    /// What patients and insurers owe on issued invoices, by how long ago they were issued.
    pub async fn aged_receivables(&self, tenants: Option<&[Uuid]>, as_of: Date) -> Result<Vec<AgedRow>, StoreError> {
        let sql = format!(
            "SELECT patient_id, insurer_id, issued_at, patient_share - paid_patient, insurer_share - paid_insurer FROM invoices \
             WHERE status IN ('issued', 'partially_paid') AND issued_at IS NOT NULL{}",
            tenant_filter("hospital_id", tenants, 1)
        );
        let rows: Vec<(Uuid, Option<Uuid>, OffsetDateTime, i64, i64)> = on_pool!(&self.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in tenants.unwrap_or_default() {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await
        })?;
        let mut by_party: std::collections::BTreeMap<(String, Option<Uuid>), [i64; 4]> =
            std::collections::BTreeMap::new();
        for (patient, insurer, issued_at, patient_due, insurer_due) in rows {
            let age = (as_of - issued_at.date()).whole_days();
            let bucket = match age {
                ..=30 => 0,
                31..=60 => 1,
                61..=90 => 2,
                _ => 3,
            };
            if patient_due > 0 {
                by_party.entry(("patient".into(), Some(patient))).or_default()[bucket] += patient_due;
            }
            if insurer_due > 0 {
                by_party.entry(("insurer".into(), insurer)).or_default()[bucket] += insurer_due;
            }
        }
        Ok(by_party
            .into_iter()
            .map(|((payer, party_id), b)| AgedRow {
                payer,
                party_id,
                current: b[0],
                days_31_60: b[1],
                days_61_90: b[2],
                over_90: b[3],
                total: b.iter().sum(),
            })
            .collect())
    }

    /// Commissions per agent earned in `[from, to)`.
    pub async fn commissions_by_agent(
        &self,
        insurer: Option<Uuid>,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<CommissionRow>, StoreError> {
        let rows: Vec<(Uuid, i64, i64, i64)> = on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT agent_id, COUNT(*), \
                 CAST(COALESCE(SUM(CASE WHEN status = 'earned' THEN amount ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN status = 'clawed_back' THEN amount ELSE 0 END), 0) AS BIGINT) \
                 FROM commissions WHERE ($1 IS NULL OR insurer_id = $1) AND earned_at >= $2 AND earned_at < $3 \
                 GROUP BY agent_id ORDER BY agent_id",
            )
            .bind(insurer)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(agent_id, commissions, earned, clawed_back)| CommissionRow {
                agent_id,
                commissions,
                earned,
                clawed_back,
            })
            .collect())
    }
}

/// A report row as a CSV line, in the order of its header.
pub trait CsvRow {
    const HEADER: &'static str;
    fn csv(&self) -> String;
}

impl CsvRow for CashRow {
    const HEADER: &'static str = "date,method,received,refunded,net";
    fn csv(&self) -> String {
        format!("{},{},{},{},{}", self.date, self.method, self.received, self.refunded, self.net)
    }
}

impl CsvRow for AgedRow {
    const HEADER: &'static str = "payer,party_id,current,days_31_60,days_61_90,over_90,total";
    fn csv(&self) -> String {
        let party = self.party_id.map(|p| p.to_string()).unwrap_or_default();
        format!(
            "{},{party},{},{},{},{},{}",
            self.payer, self.current, self.days_31_60, self.days_61_90, self.over_90, self.total
        )
    }
}

impl CsvRow for CommissionRow {
    const HEADER: &'static str = "agent_id,commissions,earned,clawed_back";
    fn csv(&self) -> String {
        format!("{},{},{},{}", self.agent_id, self.commissions, self.earned, self.clawed_back)
    }
}
