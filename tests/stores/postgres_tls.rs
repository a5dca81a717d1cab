//! The PostgreSQL store over TLS: the conformance suite with `sslmode=verify-full`, the
//! server seeing TLS on the store's connections, certificates from another authority or for
//! another name refused with a typed error that holds no password, the weaker modes, and
//! connection strings refused clearly.
//!
//! Needs `BITCOIN_CHECKOUT_PG_TLS`, a URL with `sslmode=verify-full&sslrootcert=<the test
//! CA>` for host `localhost` (`scripts/postgres tls-url`; `scripts/test` exports it; the
//! server's certificate names `localhost` only, and `other-ca.pem` beside the CA signed
//! nothing), and `BITCOIN_CHECKOUT_PG` (plain). These tests fail, never skip, without them.
#![cfg(all(feature = "postgres", feature = "testkit"))]

use std::path::PathBuf;
use std::sync::Arc;

use bitcoin_checkout::store::{PostgresStore, SslMode, Store, StoreError};
use bitcoin_checkout::testkit::conformance;

use super::postgres_store::{Schemas, admin, pg_url};

/// The TLS URL of the test server.
fn tls_url() -> String {
    match std::env::var("BITCOIN_CHECKOUT_PG_TLS") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "BITCOIN_CHECKOUT_PG_TLS is not set: the PostgreSQL TLS tests need the test server's \
             TLS URL. Run `scripts/test`, or after `scripts/postgres start`: \
             BITCOIN_CHECKOUT_PG_TLS=\"$(scripts/postgres tls-url)\" cargo test …"
        ),
    }
}

/// The `sslrootcert` of the TLS URL (the test CA).
fn ca_path() -> PathBuf {
    let url = tls_url();
    let (_, after) = url
        .split_once("sslrootcert=")
        .expect("the TLS URL names its sslrootcert");
    PathBuf::from(after.split('&').next().expect("a path"))
}

/// The TLS URL with one thing replaced.
fn tls_url_with(from: &str, to: &str) -> String {
    let url = tls_url();
    assert!(url.contains(from), "{url} has no {from}");
    url.replacen(from, to, 1)
}

/// The server's view of the connections named `app`: (all of them TLS, how many).
fn server_sees(app: &str) -> (bool, usize) {
    let rows = admin(&format!(
        "SELECT coalesce(bool_and(s.ssl), false)::text || ' ' || count(*) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = '{app}'"
    ))
    .expect("query pg_stat_ssl");
    let row = rows[0].clone().expect("a row");
    let (ssl, n) = row.split_once(' ').expect("two fields");
    (ssl == "true", n.parse().expect("a count"))
}

const SECRET: &str = "hunter2-Sup3rSecret";

/// A connection failure that no retry fixes, whose text holds no password.
fn refused(result: Result<PostgresStore, StoreError>, what: &str) -> String {
    let err = result.expect_err(what);
    let text = format!("{err} {err:?}");
    assert!(!err.is_retryable(), "{what}: {err:?}");
    assert!(matches!(err, StoreError::Backend { .. }), "{what}: {err:?}");
    assert!(
        !text.contains("Sup3r") && !text.contains("hunter2"),
        "{what}: {text}"
    );
    eprintln!("{what}: {err}");
    text
}

#[test]
fn the_conformance_suite_passes_over_verified_tls() {
    let schemas = Schemas::new();
    let store = || {
        let store = PostgresStore::builder(tls_url())
            .schema(schemas.fresh())
            .pool_size(2)
            .connect()
            .expect("connect over TLS");
        assert_eq!(store.ssl_mode(), SslMode::VerifyFull);
        store
    };
    conformance::run_all(store);
    conformance::run_links(store);
    conformance::run_resume_store(store);
}

#[test]
fn the_server_sees_tls_on_every_connection_of_the_store() {
    let schemas = Schemas::new();
    let app = format!("bc_tls_{}", schemas.fresh());
    let store = PostgresStore::builder(format!("{}&application_name={app}", tls_url()))
        .schema(schemas.fresh())
        .pool_size(3)
        .connect()
        .expect("connect over TLS");
    // Calls from several threads at once open more than one connection.
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for _ in 0..20 {
                    store.events_after(None, 10).expect("read");
                }
            });
        }
    });
    let (tls, n) = server_sees(&app);
    assert!((1..=3).contains(&n), "{n} connections");
    assert!(tls, "a connection of the store is not TLS");
    assert!(
        format!("{store:?}").contains("sslmode=verify-full"),
        "{store:?}"
    );

    // The same server, plainly: the plain URL, and sslmode=disable on the TLS URL.
    let plain_app = format!("bc_plain_{}", schemas.fresh());
    let plain = PostgresStore::builder(format!("{} application_name={plain_app}", pg_url()))
        .schema(schemas.fresh())
        .connect()
        .expect("connect plainly");
    assert_eq!(plain.ssl_mode(), SslMode::Disable);
    assert_eq!(server_sees(&plain_app), (false, 1));
    let disabled_app = format!("bc_disabled_{}", schemas.fresh());
    let disabled = PostgresStore::builder(format!(
        "{}&application_name={disabled_app}",
        tls_url_with("sslmode=verify-full", "sslmode=disable")
    ))
    .schema(schemas.fresh())
    .connect()
    .expect("sslmode=disable connects");
    assert_eq!(disabled.ssl_mode(), SslMode::Disable);
    assert_eq!(server_sees(&disabled_app), (false, 1));
    drop((plain, disabled));
}

#[test]
fn verify_full_refuses_a_certificate_from_another_authority() {
    let other = ca_path().with_file_name("other-ca.pem");
    assert!(other.is_file(), "{} is missing", other.display());
    let with_password = |url: String| url.replacen("postgres@", &format!("postgres:{SECRET}@"), 1);
    let text = refused(
        PostgresStore::connect(&with_password(tls_url_with(
            &ca_path().display().to_string(),
            &other.display().to_string(),
        ))),
        "a root that did not sign the server's certificate",
    );
    assert!(text.contains("certificate was refused"), "{text}");
    // Mozilla's roots did not sign it either.
    let text = refused(
        PostgresStore::connect(&with_password(tls_url_with(
            &ca_path().display().to_string(),
            "system",
        ))),
        "the system roots",
    );
    assert!(text.contains("certificate was refused"), "{text}");
    // The same through the builder's PEM (verify-full by default).
    let pem = std::fs::read(&other).expect("read other-ca.pem");
    let text = refused(
        PostgresStore::builder(with_password(
            tls_url().split('?').next().expect("base").to_owned(),
        ))
        .tls_root_pem(pem)
        .connect(),
        "the builder's root",
    );
    assert!(text.contains("certificate was refused"), "{text}");
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    // The certificate names `localhost` only.
    let text = refused(
        PostgresStore::connect(&tls_url_with("@localhost:", "@127.0.0.1:")),
        "a host name the certificate does not name",
    );
    assert!(text.contains("not valid for name"), "{text}");
    let schemas = Schemas::new();
    let store = PostgresStore::builder(tls_url_with("@localhost:", "@127.0.0.1:").replacen(
        "verify-full",
        "verify-ca",
        1,
    ))
    .schema(schemas.fresh())
    .connect()
    .expect("verify-ca checks the chain only");
    assert_eq!(store.ssl_mode(), SslMode::VerifyCa);
    assert!(store.events_after(None, 1).expect("read").is_empty());
}

#[test]
fn the_weaker_modes_and_the_builder() {
    let schemas = Schemas::new();
    let base = tls_url().split('?').next().expect("base").to_owned();
    // require and prefer without a root: encrypted, the certificate unchecked (as libpq),
    // so even another host name is accepted.
    for mode in ["require", "prefer", "allow"] {
        let app = format!("bc_{mode}_{}", schemas.fresh());
        let url = format!("{base}?sslmode={mode}&application_name={app}").replacen(
            "@localhost:",
            "@127.0.0.1:",
            1,
        );
        let store = PostgresStore::builder(url)
            .schema(schemas.fresh())
            .connect()
            .unwrap_or_else(|e| panic!("sslmode={mode}: {e}"));
        assert_eq!(store.ssl_mode().as_str(), mode);
        assert_eq!(server_sees(&app), (true, 1), "sslmode={mode}");
    }
    // require with a root checks the chain (libpq), not the name.
    let url = tls_url_with("sslmode=verify-full", "sslmode=require");
    let other = ca_path().with_file_name("other-ca.pem");
    refused(
        PostgresStore::connect(&url.replacen(
            &ca_path().display().to_string(),
            &other.display().to_string(),
            1,
        )),
        "require with a root that did not sign",
    );
    // The builder: a root PEM given in code asks for verify-full; the mode set in code wins
    // over the string's; a rustls configuration of the application's own is used.
    let pem = std::fs::read(ca_path()).expect("read the CA");
    let store = PostgresStore::builder(format!("{base}?sslmode=disable"))
        .schema(schemas.fresh())
        .ssl_mode(SslMode::VerifyFull)
        .tls_root_pem(pem.clone())
        .connect()
        .expect("verify-full from the builder");
    assert_eq!(store.ssl_mode(), SslMode::VerifyFull);
    let store = PostgresStore::builder(base.clone())
        .schema(schemas.fresh())
        .tls_root_pem(pem.clone())
        .connect()
        .expect("a root PEM alone");
    assert_eq!(store.ssl_mode(), SslMode::VerifyFull);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("a certificate")).expect("a root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let app = format!("bc_own_{}", schemas.fresh());
    let store = PostgresStore::builder(format!("{base}?application_name={app}"))
        .schema(schemas.fresh())
        .tls_config(Arc::new(config))
        .connect()
        .expect("the application's rustls configuration");
    assert_eq!(store.ssl_mode(), SslMode::VerifyFull);
    assert_eq!(server_sees(&app), (true, 1));
    let debug = format!(
        "{:?}",
        PostgresStore::builder(format!("host=localhost password={SECRET}"))
    );
    assert!(!debug.contains("Sup3r"), "{debug}");
}

#[test]
fn unknown_modes_and_unsupported_keys_are_refused_clearly() {
    let text = refused(
        PostgresStore::connect(&tls_url_with("sslmode=verify-full", "sslmode=verify_full")),
        "an unknown sslmode",
    );
    assert!(
        text.contains("unknown sslmode") && text.contains("verify_full"),
        "{text}"
    );
    let text = refused(
        PostgresStore::connect(&format!("{} sslmode=paranoid password={SECRET}", pg_url())),
        "an unknown sslmode, key=value form",
    );
    assert!(text.contains("unknown sslmode"), "{text}");
    let text = refused(
        PostgresStore::connect(&format!("{} sslcert=/tmp/client.pem", pg_url())),
        "a client certificate in the string",
    );
    assert!(text.contains("sslcert is not supported"), "{text}");
    let text = refused(
        PostgresStore::connect(&tls_url_with(
            &ca_path().display().to_string(),
            "/nonexistent/ca.pem",
        )),
        "a missing sslrootcert",
    );
    assert!(text.contains("cannot read sslrootcert"), "{text}");
    let text = refused(
        PostgresStore::connect(&format!("{} sslmode=require sslrootcert=system", pg_url())),
        "sslrootcert=system with a weak mode",
    );
    assert!(text.contains("verify-full"), "{text}");
}
