//! TLS for every connection, from the URL's `sslmode` and `sslrootcert` as
//! libpq reads them (tokio-postgres itself knows only disable/prefer/require
//! and no root certificates, so the crate takes both out of the URL and
//! builds the rustls configuration they ask for).
//!
//! | `sslmode` | encrypted | server certificate checked |
//! | --- | --- | --- |
//! | `disable` | no | - |
//! | `prefer` (default) | if the server offers it | no (as libpq) |
//! | `require` | yes | no; with `sslrootcert`, as `verify-ca` (as libpq) |
//! | `verify-ca` | yes | signed by `sslrootcert` |
//! | `verify-full` | yes | signed by `sslrootcert` and issued for the host |
//!
//! `sslrootcert` defaults to `~/.postgresql/root.crt`, as in libpq. A URL
//! with only `hostaddr=` encrypts as libpq does, and verify-full refuses it
//! (no name to check; `ConnectionSettings::establish`). Stricter than libpq:
//! verify-full looks for the host name only in the subjectAltName (RFC 6125;
//! libpq falls back to the CN), and X.509 v1 certificates are refused.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::url::take_params;

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it; no certificate check.
    Prefer,
    /// Always encrypt; no certificate check unless a root certificate is given.
    Require,
    /// Always encrypt; the certificate must be signed by the root certificate.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

/// What the URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (tokio-postgres refuses
/// the values and the key it does not know) and reads them.
pub(super) fn split_tls(url: &str) -> Result<(String, TlsSettings), String> {
    let (rest, params) = take_params(url, &["sslmode", "sslrootcert"]);
    let mut settings = TlsSettings {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    for (key, value) in params {
        match key.as_str() {
            "sslmode" => {
                settings.mode = match value.as_str() {
                    "disable" => SslMode::Disable,
                    // libpq's `allow` tries plain first; encrypting when offered is no worse.
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                        ));
                    }
                }
            }
            _ => settings.root_cert = Some(PathBuf::from(value)),
        }
    }
    if settings.mode == SslMode::Require && settings.root_cert.is_some() {
        settings.mode = SslMode::VerifyCa;
    }
    Ok((rest, settings))
}

impl TlsSettings {
    /// tokio-postgres's own mode for these settings.
    pub fn tokio_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as T;
        match self.mode {
            SslMode::Disable => T::Disable,
            SslMode::Prefer => T::Prefer,
            _ => T::Require,
        }
    }

    /// The rustls connector, or an error that names the setting to fix.
    pub fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(AnyCertificate(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let path = match &self.root_cert {
                    Some(p) => p.clone(),
                    None => default_root_cert().ok_or_else(|| {
                        "sslmode=verify-ca/verify-full needs a root certificate: add \
                         sslrootcert=/path/to/root.crt to the URL (or put it in ~/.postgresql/root.crt)"
                            .to_owned()
                    })?,
                };
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(&path)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "sslrootcert {}: no certificate in it",
                        path.display()
                    ));
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(AnyHostName(webpki))
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

fn default_root_cert() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

/// `prefer`/`require` without a root certificate: encrypted, but any
/// certificate is accepted (libpq does the same). Handshake signatures are
/// still checked, so the peer does hold the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the root certificate; the host name
/// is not compared.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_removes_the_tls_parameters() {
        let (rest, s) = split_tls(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/r.crt&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some(std::path::Path::new("/r.crt")));
        let (rest, s) = split_tls("host=h dbname=d sslmode=require").unwrap();
        assert!(!rest.contains("sslmode"), "{rest}");
        assert_eq!(s.mode, SslMode::Require);
        assert_eq!(
            split_tls("postgres://h/db").unwrap().1.mode,
            SslMode::Prefer
        );
        // libpq: require with a root certificate verifies the chain.
        assert_eq!(
            split_tls("postgres://h/db?sslmode=require&sslrootcert=/r")
                .unwrap()
                .1
                .mode,
            SslMode::VerifyCa
        );
        assert!(
            split_tls("postgres://h/db?sslmode=bogus")
                .unwrap_err()
                .contains("sslmode=bogus")
        );
    }

    #[test]
    fn verification_without_a_root_certificate_says_how_to_give_one() {
        let s = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(PathBuf::from("/nonexistent/root.crt")),
        };
        assert!(
            s.connector()
                .err()
                .unwrap()
                .contains("/nonexistent/root.crt")
        );
    }
}
