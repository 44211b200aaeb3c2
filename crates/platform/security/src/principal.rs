//! Roles, tenant scopes, and the claims an access token carries.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a person (or service) does at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    HospitalClerk,
    Clinician,
    ClaimsOfficer,
    BillingClerk,
    Agent,
    Auditor,
    /// A patient or policy holder looking at their own records.
    Member,
    /// Another MedCov service calling with client credentials.
    Service,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Admin,
        Role::HospitalClerk,
        Role::Clinician,
        Role::ClaimsOfficer,
        Role::BillingClerk,
        Role::Agent,
        Role::Auditor,
        Role::Member,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::HospitalClerk => "hospital_clerk",
            Role::Clinician => "clinician",
            Role::ClaimsOfficer => "claims_officer",
            Role::BillingClerk => "billing_clerk",
            Role::Agent => "agent",
            Role::Auditor => "auditor",
            Role::Member => "member",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim()).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role `{s}`: expected one of {}", names.join(", "))
        })
    }
}

/// Which records a principal may see. Every query of tenant data is filtered by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Every tenant: platform administrators, auditors and services.
    Platform,
    /// These hospitals.
    Hospitals { hospitals: Vec<Uuid> },
    /// This insurer.
    Insurer { insurer: Uuid },
    /// Only the principal's own records (members).
    Own,
}

impl Scope {
    /// Which roles a principal with this scope may hold.
    pub fn allows(&self, role: Role) -> bool {
        use Role::*;
        match self {
            Scope::Platform => matches!(role, Admin | Auditor | Service),
            Scope::Hospitals { .. } => matches!(role, Admin | HospitalClerk | Clinician | BillingClerk | Auditor),
            Scope::Insurer { .. } => matches!(role, Admin | ClaimsOfficer | Agent | BillingClerk | Auditor),
            Scope::Own => matches!(role, Member),
        }
    }

    /// Checks a role set against this scope; the error names the first role that does not fit.
    pub fn check_roles(&self, roles: &BTreeSet<Role>) -> Result<(), String> {
        if roles.is_empty() {
            return Err("at least one role is required".to_owned());
        }
        if let Scope::Hospitals { hospitals } = self
            && hospitals.is_empty()
        {
            return Err("a hospital scope needs at least one hospital".to_owned());
        }
        match roles.iter().find(|role| !self.allows(**role)) {
            Some(role) => Err(format!("role `{role}` cannot be held with a `{}` scope", self.kind())),
            None => Ok(()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Platform => "platform",
            Scope::Hospitals { .. } => "hospitals",
            Scope::Insurer { .. } => "insurer",
            Scope::Own => "own",
        }
    }

    /// Whether everything this scope covers is also covered by `outer`: a tenant administrator
    /// may only hand out scopes inside their own.
    pub fn within(&self, outer: &Scope) -> bool {
        match (outer, self) {
            (Scope::Platform, _) => true,
            (Scope::Hospitals { hospitals: outer }, Scope::Hospitals { hospitals: inner }) => {
                inner.iter().all(|h| outer.contains(h))
            }
            (Scope::Insurer { insurer: outer }, Scope::Insurer { insurer: inner }) => outer == inner,
            _ => false,
        }
    }

    pub fn covers_hospital(&self, hospital: Uuid) -> bool {
        match self {
            Scope::Platform => true,
            Scope::Hospitals { hospitals } => hospitals.contains(&hospital),
            _ => false,
        }
    }

    pub fn covers_insurer(&self, insurer: Uuid) -> bool {
        match self {
            Scope::Platform => true,
            Scope::Insurer { insurer: own } => *own == insurer,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Service,
}

/// The claims of a MedCov access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user or service account id.
    pub sub: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// This token's id.
    pub jti: Uuid,
    /// The session (refresh-token family) the token belongs to.
    pub sid: Uuid,
    pub kind: PrincipalKind,
    pub roles: BTreeSet<Role>,
    pub scope: Scope,
}

/// A caller whose token has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: Uuid,
    pub kind: PrincipalKind,
    pub roles: BTreeSet<Role>,
    pub scope: Scope,
    pub session: Uuid,
    pub token: Uuid,
}

impl From<AccessClaims> for Principal {
    fn from(claims: AccessClaims) -> Self {
        Principal {
            id: claims.sub,
            kind: claims.kind,
            roles: claims.roles,
            scope: claims.scope,
            session: claims.sid,
            token: claims.jti,
        }
    }
}

impl Principal {
    /// Who is asking, as far as answers can differ: the tenant scope and the roles (and the
    /// person, for `own`-scoped members). Response caches (`medcov_http::caching`) key their
    /// entries by it, so one tenant never receives another's answer, nor a role one it may not
    /// see.
    pub fn audience(&self) -> String {
        let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        let scope = match &self.scope {
            Scope::Platform => "platform".to_owned(),
            Scope::Hospitals { hospitals } => {
                let mut ids: Vec<String> = hospitals.iter().map(ToString::to_string).collect();
                ids.sort();
                format!("hospitals={}", ids.join(","))
            }
            Scope::Insurer { insurer } => format!("insurer={insurer}"),
            Scope::Own => format!("own={}", self.id),
        };
        format!("{scope};roles={}", roles.join(","))
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }

    /// A platform-wide administrator.
    pub fn is_platform_admin(&self) -> bool {
        self.has(Role::Admin) && self.scope == Scope::Platform
    }

    /// Refuses unless the principal holds one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), medcov_http::ApiError> {
        if self.has_any(roles) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(medcov_http::ApiError::Forbidden(format!("this needs one of the roles: {}", names.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audiences_differ_by_scope_and_roles_and_members_by_person() {
        let principal = |roles: &[Role], scope: Scope| Principal {
            id: Uuid::now_v7(),
            kind: PrincipalKind::User,
            roles: roles.iter().copied().collect(),
            scope,
            session: Uuid::nil(),
            token: Uuid::nil(),
        };
        let h = |ids: &[u128]| Scope::Hospitals { hospitals: ids.iter().map(|i| Uuid::from_u128(*i)).collect() };
        let clerk_ab = principal(&[Role::HospitalClerk], h(&[1, 2])).audience();
        assert_eq!(clerk_ab, principal(&[Role::HospitalClerk], h(&[2, 1])).audience(), "order does not matter");
        assert_ne!(clerk_ab, principal(&[Role::HospitalClerk], h(&[1])).audience());
        assert_ne!(clerk_ab, principal(&[Role::Clinician], h(&[1, 2])).audience());
        assert_ne!(
            principal(&[Role::Agent], Scope::Insurer { insurer: Uuid::from_u128(1) }).audience(),
            principal(&[Role::Agent], Scope::Insurer { insurer: Uuid::from_u128(2) }).audience()
        );
        assert_ne!(
            principal(&[Role::Member], Scope::Own).audience(),
            principal(&[Role::Member], Scope::Own).audience()
        );
    }

    use super::*;

    fn roles(list: &[Role]) -> BTreeSet<Role> {
        list.iter().copied().collect()
    }

    #[test]
    fn roles_must_fit_their_scope() {
        let hospital = Scope::Hospitals { hospitals: vec![Uuid::now_v7()] };
        let insurer = Scope::Insurer { insurer: Uuid::now_v7() };
        let table: [(&Scope, &[Role], bool); 9] = [
            (&Scope::Platform, &[Role::Admin], true),
            (&Scope::Platform, &[Role::Auditor], true),
            (&Scope::Platform, &[Role::Clinician], false),
            (&hospital, &[Role::HospitalClerk, Role::Clinician], true),
            (&hospital, &[Role::ClaimsOfficer], false),
            (&insurer, &[Role::ClaimsOfficer, Role::Agent], true),
            (&insurer, &[Role::Clinician], false),
            (&Scope::Own, &[Role::Member], true),
            (&Scope::Own, &[Role::Member, Role::Admin], false),
        ];
        for (scope, list, ok) in table {
            assert_eq!(scope.check_roles(&roles(list)).is_ok(), ok, "{scope:?} {list:?}");
        }
        assert!(Scope::Platform.check_roles(&roles(&[])).is_err());
        assert!(Scope::Hospitals { hospitals: vec![] }.check_roles(&roles(&[Role::Clinician])).is_err());
    }

    #[test]
    fn scopes_nest() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ab = Scope::Hospitals { hospitals: vec![a, b] };
        let just_a = Scope::Hospitals { hospitals: vec![a] };
        assert!(just_a.within(&ab));
        assert!(!ab.within(&just_a));
        assert!(ab.within(&Scope::Platform));
        assert!(!Scope::Platform.within(&ab));
        assert!(!Scope::Insurer { insurer: a }.within(&ab));
        assert!(ab.covers_hospital(b) && !just_a.covers_hospital(b));
        assert!(Scope::Platform.covers_insurer(a));
    }

    #[test]
    fn scopes_serialise_with_their_kind() {
        let json = serde_json::to_value(Scope::Insurer { insurer: Uuid::nil() }).unwrap();
        assert_eq!(json["kind"], "insurer");
        let back: Scope = serde_json::from_value(serde_json::json!({"kind": "platform"})).unwrap();
        assert_eq!(back, Scope::Platform);
        assert!("nurse".parse::<Role>().unwrap_err().contains("hospital_clerk"));
    }
}
