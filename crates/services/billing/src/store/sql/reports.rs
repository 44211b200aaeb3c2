//! What the reconciliation and the reports read, for some tenants (hospitals or insurers; all
//! with `None`).

use std::collections::BTreeMap;

use medcov_domain::TextEnum;
use medcov_store::{StoreError, decode};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, Pool, in_tenants};
use crate::domain::commission::CommissionStatus;
use crate::domain::invoice::Status;
use crate::domain::ledger::{Account, Derived, Method};
use crate::domain::refund::{Kind, RefundStatus};
use crate::domain::reports::{Books, Earned, Movement, Owed};

type Query = sqlx::QueryBuilder<Db>;

/// Debits minus credits per currency and account in the journal.
pub(crate) async fn journal(pool: &Pool, tenants: Option<&[Uuid]>) -> Result<Vec<(String, Account, i64)>, StoreError> {
    let mut query = Query::new(
        "SELECT e.currency, p.account, CAST(COALESCE(SUM(p.debit - p.credit), 0) AS BIGINT) FROM journal_postings p \
         JOIN journal_entries e ON e.id = p.entry_id WHERE 1 = 1",
    );
    in_tenants(&mut query, "e.tenant_id", tenants);
    query.push(" GROUP BY e.currency, p.account");
    let rows: Vec<(String, String, i64)> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(|(currency, account, balance)| Ok((currency, decode("journal_postings", "account", &account)?, balance)))
        .collect()
}

/// Adds ` AND <column> IN ('a', 'b')` for fixed words (statuses), bound.
fn in_words(query: &mut Query, column: &str, words: &[&'static str]) {
    query.push(format!(" AND {column} IN ("));
    let mut list = query.separated(", ");
    for word in words {
        list.push_bind(*word);
    }
    query.push(")");
}

/// The balances the invoices, premiums, payments, refunds and commissions give, per currency
/// (by its code).
pub(crate) async fn derived(pool: &Pool, tenants: Option<&[Uuid]>) -> Result<Vec<Derived>, StoreError> {
    let mut by_currency: BTreeMap<String, Derived> = BTreeMap::new();

    let issued = [Status::Issued.as_str(), Status::PartiallyPaid.as_str(), Status::Paid.as_str()];
    let mut query = Query::new(
        "SELECT currency, CAST(COALESCE(SUM(patient_share - paid_patient), 0) AS BIGINT), \
         CAST(COALESCE(SUM(insurer_share - paid_insurer), 0) AS BIGINT), \
         CAST(COALESCE(SUM(total), 0) AS BIGINT), CAST(COALESCE(SUM(ex_gratia), 0) AS BIGINT) \
         FROM invoices WHERE 1 = 1",
    );
    in_words(&mut query, "status", &issued);
    in_tenants(&mut query, "hospital_id", tenants);
    query.push(" GROUP BY currency");
    let rows: Vec<(String, i64, i64, i64, i64)> = query.build_query_as().fetch_all(pool).await?;
    for (currency, patient_receivable, insurer_receivable, care_billed, ex_gratia_billed) in rows {
        let d = of_currency(&mut by_currency, currency);
        (d.patient_receivable, d.insurer_receivable, d.care_billed, d.ex_gratia_billed) =
            (patient_receivable, insurer_receivable, care_billed, ex_gratia_billed);
    }

    let mut query = Query::new(
        "SELECT currency, CAST(COALESCE(SUM(amount - paid), 0) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) \
         FROM premiums WHERE status <> ",
    );
    query.push_bind(Status::Void.as_str());
    in_tenants(&mut query, "insurer_id", tenants);
    query.push(" GROUP BY currency");
    let rows: Vec<(String, i64, i64)> = query.build_query_as().fetch_all(pool).await?;
    for (currency, premium_receivable, premium_billed) in rows {
        let d = of_currency(&mut by_currency, currency);
        (d.premium_receivable, d.premium_billed) = (premium_receivable, premium_billed);
    }

    let mut query = Query::new(
        "SELECT p.currency, CAST(COALESCE(SUM(c.amount), 0) AS BIGINT) FROM commissions c \
         JOIN premiums p ON p.id = c.premium_id WHERE c.status = ",
    );
    query.push_bind(CommissionStatus::Earned.as_str());
    in_tenants(&mut query, "c.insurer_id", tenants);
    query.push(" GROUP BY p.currency");
    let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(pool).await?;
    for (currency, earned) in rows {
        of_currency(&mut by_currency, currency).commissions_earned = earned;
    }

    let mut query =
        Query::new("SELECT currency, CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM commission_payouts WHERE 1 = 1");
    in_tenants(&mut query, "insurer_id", tenants);
    query.push(" GROUP BY currency");
    let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(pool).await?;
    for (currency, paid_out) in rows {
        of_currency(&mut by_currency, currency).paid_out = paid_out;
    }

    // Money per currency and method: payments in, completed refunds out (with the credit they
    // took), payouts out. A payment is in the currency of what it pays.
    let mut query = Query::new(
        "SELECT o.currency, p.method, CAST(COALESCE(SUM(p.amount), 0) AS BIGINT), \
         CAST(COALESCE(SUM(p.credit), 0) AS BIGINT) FROM payments p JOIN invoices o ON o.id = p.invoice_id WHERE 1 = 1",
    );
    in_tenants(&mut query, "p.hospital_id", tenants);
    query.push(
        " GROUP BY o.currency, p.method UNION ALL SELECT o.currency, p.method, CAST(COALESCE(SUM(p.amount), 0) AS BIGINT), \
         CAST(COALESCE(SUM(p.credit), 0) AS BIGINT) FROM premium_payments p JOIN premiums o ON o.id = p.premium_id \
         WHERE 1 = 1",
    );
    in_tenants(&mut query, "p.insurer_id", tenants);
    query.push(" GROUP BY o.currency, p.method");
    for (kind, payments, owed, owed_id) in [
        (Kind::Care, "payments", "invoices", "invoice_id"),
        (Kind::Premium, "premium_payments", "premiums", "premium_id"),
    ] {
        query.push(format!(
            " UNION ALL SELECT o.currency, p.method, CAST(COALESCE(SUM(-r.amount), 0) AS BIGINT), \
             CAST(COALESCE(SUM(-r.from_credit), 0) AS BIGINT) FROM refunds r JOIN {payments} p ON p.id = r.payment_id \
             JOIN {owed} o ON o.id = p.{owed_id} WHERE r.kind = "
        ));
        query.push_bind(kind.as_str()).push(" AND r.status = ").push_bind(RefundStatus::Completed.as_str());
        in_tenants(&mut query, "r.tenant_id", tenants);
        query.push(" GROUP BY o.currency, p.method");
    }
    query.push(
        " UNION ALL SELECT currency, method, CAST(COALESCE(SUM(-amount), 0) AS BIGINT), CAST(0 AS BIGINT) \
         FROM commission_payouts WHERE 1 = 1",
    );
    in_tenants(&mut query, "insurer_id", tenants);
    query.push(" GROUP BY currency, method");
    let rows: Vec<(String, String, i64, i64)> = query.build_query_as().fetch_all(pool).await?;
    for (currency, method, amount, credit) in rows {
        let method = decode::<Method>("payments", "method", &method)?;
        of_currency(&mut by_currency, currency).money.push((method, amount, credit));
    }
    Ok(by_currency.into_values().collect())
}

/// The balances of one currency, made when first seen.
fn of_currency(by_currency: &mut BTreeMap<String, Derived>, currency: String) -> &mut Derived {
    by_currency.entry(currency.clone()).or_insert_with(|| Derived { currency, ..Derived::default() })
}

/// The books of a movement, as a column: 0 a hospital's, 1 an insurer's.
const HOSPITAL: &str = "CAST(0 AS BIGINT)";
const INSURER: &str = "CAST(1 AS BIGINT)";

/// Payments received, refunds and commission payouts paid out in `[start, end)`, each with
/// the tenant whose books it is in and its currency (the invoice's, the premium's, the
/// payout's).
pub(crate) async fn movements(
    pool: &Pool,
    tenants: Option<&[Uuid]>,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Vec<Movement>, StoreError> {
    let mut query = Query::new("");
    // (payments, their tenant column, what they pay, its key in the payments)
    let sources = [
        ("payments", "hospital_id", "invoices", "invoice_id", HOSPITAL),
        ("premium_payments", "insurer_id", "premiums", "premium_id", INSURER),
    ];
    for (i, (payments, tenant, owed, owed_id, books)) in sources.into_iter().enumerate() {
        if i > 0 {
            query.push(" UNION ALL ");
        }
        query.push(format!(
            "SELECT p.created_at, p.{tenant}, {books}, o.currency, p.method, p.amount, CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
             FROM {payments} p JOIN {owed} o ON o.id = p.{owed_id} WHERE p.created_at >= "
        ));
        query.push_bind(start).push(" AND p.created_at < ").push_bind(end);
        in_tenants(&mut query, &format!("p.{tenant}"), tenants);
    }
    for ((kind, payments), (owed, owed_id, books)) in [(Kind::Care, "payments"), (Kind::Premium, "premium_payments")]
        .into_iter()
        .zip([("invoices", "invoice_id", HOSPITAL), ("premiums", "premium_id", INSURER)])
    {
        query.push(format!(
            " UNION ALL SELECT r.decided_at, r.tenant_id, {books}, o.currency, p.method, CAST(0 AS BIGINT), r.amount, \
             CAST(0 AS BIGINT) FROM refunds r JOIN {payments} p ON p.id = r.payment_id \
             JOIN {owed} o ON o.id = p.{owed_id} WHERE r.kind = "
        ));
        query.push_bind(kind.as_str()).push(" AND r.status = ").push_bind(RefundStatus::Completed.as_str());
        query.push(" AND r.decided_at >= ").push_bind(start).push(" AND r.decided_at < ").push_bind(end);
        in_tenants(&mut query, "r.tenant_id", tenants);
    }
    query.push(
        " UNION ALL SELECT cp.created_at, cp.insurer_id, CAST(1 AS BIGINT), cp.currency, cp.method, CAST(0 AS BIGINT), CAST(0 AS BIGINT), cp.amount FROM commission_payouts cp WHERE cp.created_at >= ",
    );
    query.push_bind(start).push(" AND cp.created_at < ").push_bind(end);
    in_tenants(&mut query, "cp.insurer_id", tenants);
    type Row = (OffsetDateTime, Uuid, i64, String, String, i64, i64, i64);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(|(at, tenant_id, books, currency, method, received, refunded, paid_out)| {
            Ok(Movement {
                at,
                tenant_id,
                books: if books == 1 { Books::Insurer } else { Books::Hospital },
                currency,
                method: decode("payments", "method", &method)?,
                received,
                refunded,
                paid_out,
            })
        })
        .collect()
}

/// What is owed on issued invoices (a paid one too: an adjudication after payment may leave a share owed).
pub(crate) async fn owed(pool: &Pool, tenants: Option<&[Uuid]>) -> Result<Vec<Owed>, StoreError> {
    let mut query = Query::new(
        "SELECT hospital_id, currency, patient_id, insurer_id, issued_at, patient_share - paid_patient, \
         insurer_share - paid_insurer FROM invoices WHERE issued_at IS NOT NULL",
    );
    // A paid invoice may be owed on again: an adjudication after payment moves the shares, not
    // what was paid (the status counts both shares together).
    in_words(&mut query, "status", &[Status::Issued.as_str(), Status::PartiallyPaid.as_str(), Status::Paid.as_str()]);
    in_tenants(&mut query, "hospital_id", tenants);
    // (hospital, currency, patient, insurer, issued at, patient due, insurer due)
    type Row = (Uuid, String, Uuid, Option<Uuid>, OffsetDateTime, i64, i64);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(hospital_id, currency, patient_id, insurer_id, issued_at, patient_due, insurer_due)| Owed {
            hospital_id,
            currency,
            patient_id,
            insurer_id,
            issued_at,
            patient_due,
            insurer_due,
        })
        .collect())
}

/// Commissions earned in `[from, to)`, each with its agent, insurer, currency (its premium's)
/// and status.
pub(crate) async fn commissions_earned_between(
    pool: &Pool,
    insurer: Option<Uuid>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Earned>, StoreError> {
    let rows: Vec<(Uuid, Uuid, String, String, i64, OffsetDateTime)> = sqlx::query_as(
        "SELECT c.agent_id, c.insurer_id, p.currency, c.status, c.amount, c.earned_at \
         FROM commissions c JOIN premiums p ON p.id = c.premium_id \
         WHERE ($1 IS NULL OR c.insurer_id = $1) AND c.earned_at >= $2 AND c.earned_at < $3",
    )
    .bind(insurer)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(agent_id, insurer_id, currency, status, amount, earned_at)| {
            Ok(Earned {
                agent_id,
                insurer_id,
                currency,
                status: decode("commissions", "status", &status)?,
                amount,
                earned_at,
            })
        })
        .collect()
}
