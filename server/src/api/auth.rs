//! The optional bearer token, declared in the spec as "bearer or nothing": whether it is needed
//! depends on the server's `auth.token` setting, which the handlers check.

use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// `Authorization: Bearer <token>` — required for writes (and reads with `auth.protect_reads`)
/// when the server has `auth.token` configured.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "bearerAuth")]
pub struct BearerToken(pub Bearer);

/// A request's credentials, if any.
#[derive(SecurityScheme)]
pub enum ApiAuth {
    Bearer(BearerToken),
    #[oai(fallback)]
    Anonymous,
}
