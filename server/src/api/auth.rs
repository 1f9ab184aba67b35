//! The optional bearer token, declared in the spec as "bearer or nothing": whether it is needed
//! depends on the server's `auth.token` setting, which the handlers check.

use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// `Authorization: Bearer <token>` — required for writes (and reads with `auth.protect_reads`)
/// when the server has `auth.token` configured.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "bearerAuth")]
pub struct BearerToken(pub Bearer);

/// A request's credentials, if any. Handlers take it only so that the spec declares the scheme on
/// their operation: the guard checks the token for every route, by its method and path
/// (`guard::route_access`), before the body is read, so no handler can forget to.
#[derive(SecurityScheme)]
pub enum ApiAuth {
    Bearer(BearerToken),
    #[oai(fallback)]
    Anonymous,
}
