//! HTTPS served by sprig itself (`server.tls_cert` / `server.tls_key`), so that a bearer token
//! does not cross a network in clear when no proxy terminates TLS in front of it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig as RustlsConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// The acceptor for `server.tls_cert` / `server.tls_key`, or `None` to serve plain HTTP. Bad
/// files stop the start with the file and the reason, before anything else is opened.
pub fn acceptor(config: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) else {
        return Ok(None);
    };
    let chain = read_chain(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "server.tls_key: no private key read from {}: {e}",
            key.display()
        )
    })?;
    let provider = Arc::new(crypto::aws_lc_rs::default_provider());
    let mut tls = RustlsConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("server.tls_cert / server.tls_key: the key does not fit the certificate")?;
    // HTTP/2 where the client offers it (browsers do), else HTTP/1.1.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(tls))))
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("server.tls_cert: reading {}: {e}", path.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "server.tls_cert: {} holds no PEM certificate",
            path.display()
        );
    }
    Ok(chain)
}

/// A token sent in clear over a network can be read on the way: said once at start when the
/// bind reaches beyond loopback without HTTPS. Behind a proxy that terminates TLS, or inside a
/// container network, that is fine, so this warns and does not refuse.
pub fn warn_if_token_in_clear(addr: SocketAddr, config: &Config) {
    if config.auth.token.is_some() && !addr.ip().is_loopback() && config.server.tls_cert.is_none() {
        tracing::warn!(
            "listening on {addr} over plain HTTP with an API token: the token crosses the network \
             in clear unless a proxy in front terminates TLS; set server.tls_cert and \
             server.tls_key to serve HTTPS"
        );
    }
}
