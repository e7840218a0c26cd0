//! Certificates for TLS servers, made with openssl: a CA, and a certificate for 127.0.0.1
//! signed by it that every server sharing one [`Certificates`] presents (the nodes of a
//! TLS cluster, which must trust each other).

use std::{path::Path, process::Command, sync::Arc};

/// A CA and a server certificate in a temporary directory, removed when the last server
/// that uses them is dropped.
#[derive(Debug)]
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    /// Makes a new CA and a server certificate for 127.0.0.1 (and `localhost`).
    pub fn make() -> Arc<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lock-tests-tls-")
            .tempdir()
            .expect("create a temp dir for certificates");
        make(dir.path());
        Arc::new(Self { dir })
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.crt")).expect("read ca.crt")
    }

    /// The path of a file in the directory (`ca.crt`, `server.crt`, `server.key`).
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `redis-server` arguments that serve TLS with these certificates (clients need no
    /// certificate of their own).
    pub(crate) fn server_args(&self) -> [String; 8] {
        [
            "--tls-cert-file".into(),
            self.file("server.crt"),
            "--tls-key-file".into(),
            self.file("server.key"),
            "--tls-ca-cert-file".into(),
            self.file("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }
}

/// Makes `ca.crt` and a `server.crt`/`server.key` for 127.0.0.1 signed by it in `dir`.
fn make(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}); install it (apt-get install openssl)")
            });
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=lock-tests CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}
