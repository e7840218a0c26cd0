//! How the store's connections are made: in plain, or over TLS when the URL says
//! `sslmode=require` (the crate's `tls` feature: rustls, the same as for `rediss://`).
//!
//! Over TLS the server's certificate is always verified, chain and host name, against the
//! certificate given to `BackendBuilder::tls_root_certificate` or else the system's roots;
//! unlike libpq's `require`, which encrypts without checking who answers. `sslmode=prefer`
//! (tokio-postgres' default) and `disable` connect in plain: a default server's self-signed
//! certificate would otherwise turn away URLs that never asked for TLS. SCRAM logins over
//! TLS bind the channel (`tls-server-end-point`), so `channel_binding=require` works.

use tokio_postgres::{config::SslMode, Client, Config, Socket};

/// What tokio-postgres makes connections with in this build.
#[cfg(feature = "tls")]
type Connector = rustls_tls::Connector;
#[cfg(not(feature = "tls"))]
type Connector = tokio_postgres::NoTls;

/// A connection's half that talks to the server, to be driven by a task.
pub(super) type Connection = tokio_postgres::Connection<
    Socket,
    <Connector as tokio_postgres::tls::MakeTlsConnect<Socket>>::Stream,
>;

/// Where and how to connect.
#[derive(Clone)]
pub(super) struct Target {
    config: Config,
    connector: Connector,
}

impl Target {
    /// The target for `config`, over TLS if it says `sslmode=require` (trusting `root`, PEM,
    /// if given); an error (to show to the user) if TLS cannot be had in this build or the
    /// certificates are unusable.
    pub(super) fn new(mut config: Config, root: Option<&[u8]>) -> Result<Self, String> {
        let tls = config.get_ssl_mode() == SslMode::Require;
        if !tls {
            config.ssl_mode(SslMode::Disable);
        }
        #[cfg(feature = "tls")]
        let connector = rustls_tls::Connector::new(tls, root)?;
        #[cfg(not(feature = "tls"))]
        let connector = {
            let _ = root;
            if tls {
                return Err(
                    "`sslmode=require` asks for TLS: enable lock-runtime's `tls` \
                            feature, or leave `sslmode` out"
                        .to_owned(),
                );
            }
            tokio_postgres::NoTls
        };
        Ok(Self { config, connector })
    }

    /// A new connection; the caller drives its [`Connection`].
    // Without `tls` the connector is `NoTls`, which is `Copy`.
    #[cfg_attr(not(feature = "tls"), allow(clippy::clone_on_copy))]
    pub(super) async fn connect(&self) -> Result<(Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.connector.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, root: Option<&[u8]>) -> Result<Target, String> {
        Target::new(url.parse().expect("a URL"), root)
    }

    #[test]
    fn only_sslmode_require_asks_for_tls() {
        for url in ["postgres://u@h/db", "postgres://u@h/db?sslmode=prefer"] {
            let target = target(url, None).expect("plain");
            assert_eq!(target.config.get_ssl_mode(), SslMode::Disable, "{url}");
        }
        let require = "postgres://u@h/db?sslmode=require";
        #[cfg(not(feature = "tls"))]
        {
            let error = target(require, None).err().expect("refused");
            assert!(error.contains("`tls` feature"), "{error}");
        }
        #[cfg(feature = "tls")]
        {
            let pem = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
            let error = target(require, Some(pem)).err().expect("refused");
            assert!(error.contains("not PEM"), "{error}");
            let error = target(require, Some(b"no PEM block here"))
                .err()
                .expect("refused");
            assert!(error.contains("no certificate"), "{error}");
        }
    }
}

#[cfg(feature = "tls")]
mod rustls_tls {
    use std::{
        future::Future,
        io,
        pin::Pin,
        sync::Arc,
        task::{Context, Poll},
    };

    use rustls::{
        pki_types::{pem::PemObject, CertificateDer, ServerName},
        ClientConfig, RootCertStore,
    };
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_postgres::{
        tls::{ChannelBinding, MakeTlsConnect, TlsConnect},
        Socket,
    };

    /// Makes TLS handshakes when the URL asked for TLS (else is never asked to).
    #[derive(Clone)]
    pub(crate) struct Connector(Option<Arc<ClientConfig>>);

    impl Connector {
        pub(super) fn new(tls: bool, root: Option<&[u8]>) -> Result<Self, String> {
            if !tls {
                return Ok(Self(None));
            }
            // One process-wide crypto provider; another part of the program may have set it.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut roots = RootCertStore::empty();
            match root {
                Some(pem) => {
                    for certificate in CertificateDer::pem_slice_iter(pem) {
                        let certificate = certificate
                            .map_err(|e| format!("the TLS root certificate is not PEM: {e}"))?;
                        roots.add(certificate).map_err(|e| {
                            format!("the TLS root certificate cannot be trusted: {e}")
                        })?;
                    }
                    if roots.is_empty() {
                        return Err("the TLS root certificate holds no certificate".to_owned());
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    let (added, _) = roots.add_parsable_certificates(found.certs);
                    if added == 0 {
                        return Err(format!(
                            "no system root certificates to verify the PostgreSQL server \
                             with ({} errors); give one with `tls_root_certificate`",
                            found.errors.len()
                        ));
                    }
                }
            }
            let mut config = ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            // PostgreSQL 17 requires it of direct TLS (`sslnegotiation=direct`).
            config.alpn_protocols = vec![b"postgresql".to_vec()];
            Ok(Self(Some(Arc::new(config))))
        }
    }

    impl MakeTlsConnect<Socket> for Connector {
        type Stream = TlsStream;
        type TlsConnect = Handshake;
        type Error = io::Error;

        fn make_tls_connect(&mut self, host: &str) -> io::Result<Handshake> {
            let Some(config) = &self.0 else {
                return Ok(Handshake(None));
            };
            let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{host}` is not a name a server certificate can carry"),
                )
            })?;
            Ok(Handshake(Some((config.clone(), name))))
        }
    }

    /// One TLS handshake with a server of a known name.
    pub(crate) struct Handshake(Option<(Arc<ClientConfig>, ServerName<'static>)>);

    impl TlsConnect<Socket> for Handshake {
        type Stream = TlsStream;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

        fn connect(self, socket: Socket) -> Self::Future {
            Box::pin(async move {
                let Some((config, name)) = self.0 else {
                    return Err(io::Error::other("TLS was not asked for"));
                };
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, socket)
                    .await?;
                Ok(TlsStream(stream))
            })
        }
    }

    /// A connection over TLS.
    pub(crate) struct TlsStream(tokio_rustls::client::TlsStream<Socket>);

    impl tokio_postgres::tls::TlsStream for TlsStream {
        fn channel_binding(&self) -> ChannelBinding {
            match self.0.get_ref().1.peer_certificates() {
                Some([certificate, ..]) => {
                    let digest = ring::digest::digest(end_point_hash(certificate), certificate);
                    ChannelBinding::tls_server_end_point(digest.as_ref().to_vec())
                }
                _ => ChannelBinding::none(),
            }
        }
    }

    /// The hash RFC 5929 binds a channel with: the one of the certificate's signature
    /// algorithm, with SHA-256 in place of MD5 and SHA-1 (and for anything not read here).
    fn end_point_hash(certificate: &[u8]) -> &'static ring::digest::Algorithm {
        const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
        const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
        const SHA384_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        const SHA512_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
        match signature_algorithm(certificate) {
            Some(SHA384_RSA | SHA384_ECDSA) => &ring::digest::SHA384,
            Some(SHA512_RSA | SHA512_ECDSA) => &ring::digest::SHA512,
            _ => &ring::digest::SHA256,
        }
    }

    /// The object identifier of a certificate's `signatureAlgorithm`: the second element of
    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`.
    fn signature_algorithm(certificate: &[u8]) -> Option<&[u8]> {
        let (certificate, _) = der(certificate, 0x30)?;
        let (_, rest) = der(certificate, 0x30)?;
        let (algorithm, _) = der(rest, 0x30)?;
        der(algorithm, 0x06).map(|(oid, _)| oid)
    }

    /// One DER element with `tag` at the start of `input`: its contents and what follows.
    fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&found, input) = input.split_first()?;
        let (&first, mut input) = input.split_first()?;
        if found != tag {
            return None;
        }
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || input.len() < count {
                return None;
            }
            let (bytes, rest) = input.split_at(count);
            input = rest;
            bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
        };
        (input.len() >= length).then(|| input.split_at(length))
    }

    impl AsyncRead for TlsStream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for TlsStream {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.0.is_write_vectored()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn der_elements_and_the_signature_algorithm_are_read() {
            // SEQUENCE { SEQUENCE { INTEGER 1 }, SEQUENCE { OID sha384WithRSA, NULL }, .. }
            let mut certificate = vec![0x30, 0x14, 0x30, 0x03, 0x02, 0x01, 0x01, 0x30, 0x0d, 0x06];
            certificate.push(9);
            certificate.extend([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]);
            certificate.extend([0x05, 0x00]);
            assert_eq!(end_point_hash(&certificate), &ring::digest::SHA384);
            // A long-form length, and elements cut short.
            let long = [&[0x04, 0x81, 0x02][..], &[7, 8], &[9]].concat();
            assert_eq!(der(&long, 0x04), Some((&[7u8, 8][..], &[9u8][..])));
            assert_eq!(der(&[0x04, 0x05, 1], 0x04), None);
            assert_eq!(der(&[0x30, 0x00], 0x04), None);
            assert_eq!(end_point_hash(&[0x30]), &ring::digest::SHA256);
        }
    }
}
