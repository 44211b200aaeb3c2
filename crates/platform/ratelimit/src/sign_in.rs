//! Sign-in limits, the same at the gateway and in the auth service: every attempt counts
//! against its client address's ceiling (wide: a hospital's staff may share one address) and,
//! when it names an account, against that address and account together (narrow: guessing one
//! account's password is slow). An attempt passes only when both allow it.
//!
//! Keys never hold a username: the account part is a hash of the normalised name.

use std::sync::Arc;

use aws_lc_rs::digest;

use crate::{Decision, Limiter, Quota};

/// One limit that was checked, for the answer's `RateLimit-Policy` and `RateLimit` headers.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    /// The policy's name in the headers.
    pub group: &'static str,
    pub quota: Quota,
    pub decision: Decision,
}

impl Applied {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers): the quota
    /// enforced (`q` requests per `w` seconds, with `burst` at once) and what is left of it.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        let window = self.quota.period.as_secs().max(1);
        let policy = format!("\"{}\";q={};w={window};burst={}", self.group, self.quota.per_period, self.quota.burst);
        let wait = if self.decision.allowed { self.decision.reset } else { self.decision.retry_after };
        let reset = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let now = format!("\"{}\";r={};t={reset}", self.group, self.decision.remaining);
        [("ratelimit-policy", policy), ("ratelimit", now)]
    }
}

/// The two sign-in limits.
#[derive(Clone)]
pub struct SignInLimits {
    pub limiter: Arc<dyn Limiter>,
    /// Every sign-in request from one address.
    pub per_address: Quota,
    /// Sign-ins to one account from one address.
    pub per_account: Quota,
    /// Keeps these keys apart from another component's (`gateway`, `auth`).
    pub namespace: &'static str,
}

impl SignInLimits {
    /// Counts one attempt from `address` (`None`: unknown) for `account` (when the request
    /// names one). `Ok` with the tightest limit passed, or `Err` with the one that refused.
    pub async fn check(&self, address: Option<&str>, account: Option<&str>) -> Result<Applied, Applied> {
        let address = address.unwrap_or("unknown");
        let key = format!("{}:signin:ip:{address}", self.namespace);
        let decision = self.limiter.check(&key, &self.per_address).await;
        let mut tightest = Applied { group: "sign-in", quota: self.per_address, decision };
        if !decision.allowed {
            return Err(tightest);
        }
        if let Some(account) = account.map(normalise).filter(|a| !a.is_empty()) {
            let key = format!("{}:signin:ip:{address}:account:{}", self.namespace, hash(&account));
            let decision = self.limiter.check(&key, &self.per_account).await;
            let applied = Applied { group: "sign-in-account", quota: self.per_account, decision };
            if !decision.allowed {
                return Err(applied);
            }
            if decision.remaining < tightest.decision.remaining {
                tightest = applied;
            }
        }
        Ok(tightest)
    }
}

/// Accounts are told apart as the auth service does: case and surrounding spaces aside.
fn normalise(account: &str) -> String {
    account.trim().to_lowercase()
}

fn hash(account: &str) -> String {
    let digest = digest::digest(&digest::SHA256, account.as_bytes());
    digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryLimiter;

    fn limits() -> SignInLimits {
        SignInLimits {
            limiter: Arc::new(MemoryLimiter::default()),
            per_address: Quota::per_minute(600, 30),
            per_account: Quota::per_minute(20, 10),
            namespace: "test",
        }
    }

    #[tokio::test]
    async fn staff_behind_one_address_do_not_block_each_other_but_one_account_is_limited() {
        let limits = limits();
        // Ten sign-ins of one account pass; the eleventh at once is refused.
        for _ in 0..10 {
            limits.check(Some("198.51.100.1"), Some("amina.desk")).await.expect("allowed");
        }
        let refused = limits.check(Some("198.51.100.1"), Some(" Amina.Desk ")).await.expect_err("the eleventh");
        assert_eq!(refused.group, "sign-in-account");
        assert!(!refused.decision.allowed);
        // Colleagues at the same address still sign in; the same account elsewhere too.
        for colleague in ["baraka", "chidi", "dalia", "esi", "farah", "gwen", "hana", "imani", "juma"] {
            limits.check(Some("198.51.100.1"), Some(colleague)).await.expect("a colleague");
        }
        limits.check(Some("203.0.113.5"), Some("amina.desk")).await.expect("another address");
        // The address's ceiling holds for everyone.
        let mut refused_at = None;
        for n in 0..40 {
            if limits.check(Some("198.51.100.1"), Some(&format!("user{n}"))).await.is_err() {
                refused_at = Some(n);
                break;
            }
        }
        assert!(refused_at.is_some(), "the address ceiling applies");
    }

    #[test]
    fn headers_state_the_quota_enforced() {
        let applied = Applied {
            group: "api",
            quota: Quota::per_minute(600, 100),
            decision: Decision {
                allowed: false,
                limit: 100,
                remaining: 0,
                retry_after: std::time::Duration::from_millis(100),
                reset: std::time::Duration::from_secs(10),
            },
        };
        let [(_, policy), (_, now)] = applied.headers();
        assert_eq!(policy, "\"api\";q=600;w=60;burst=100");
        assert_eq!(now, "\"api\";r=0;t=1");
    }
}
