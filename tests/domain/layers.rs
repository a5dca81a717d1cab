//! The crate's layers, checked: every module imports only from its own layer or the ones
//! below (docs/adr/0007-layers-changes-rows.md). A core module that starts importing a store,
//! a request adapter, the webhooks or the service fails here, naming the file and the path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. Modules of one layer may use each other.
const LAYERS: &[&[&str]] = &[
    // Text helpers that use nothing of the crate.
    &["digits"],
    // The domain core, values first.
    &["json", "error", "money", "id", "hash", "chain", "metadata"],
    &["transfer"],
    &["payment", "invoice"],
    &["event"],
    &["session"],
    &["link"],
    &["outbox"],
    &["snapshot"],
    // Ports and their adapters.
    &["clock", "rates", "request", "backend", "qr", "metrics"],
    &["store"],
    // The service and what runs beside it.
    &["service"],
    &["webhook", "listener", "watch", "lease"],
    &["runner", "http"],
    &["testkit"],
];

/// The last layer of the domain core (`snapshot`).
const CORE_TOP: usize = 8;

/// Files allowed to import from a higher layer, with the reason.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "store/sqlite/webhooks.rs",
        "webhook",
        "the SQLite adapter of the webhook delivery port lives with its connection",
    ),
    (
        "store/postgres/webhooks.rs",
        "webhook",
        "the PostgreSQL adapter of the webhook delivery port lives with its connection",
    ),
    (
        "store/memory/mod.rs",
        "webhook",
        "the in-memory store keeps the webhook delivery port's state beside its sessions",
    ),
    (
        "store/memory/webhooks.rs",
        "webhook",
        "the in-memory adapter of the webhook delivery port",
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The text of a source file without its comments (doc links are not imports).
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::…`, including every branch of
/// `use crate::{a::X, b::{Y, Z}}`.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at the group's top level, up to its closing brace.
            let mut depth = 0usize;
            let mut name = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_start = true,
                    c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    _ if depth == 0 && at_start && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        at_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // A lone `crate::Error` names a re-export of the crate root: its module decides.
            if name.chars().next().is_some_and(char::is_lowercase) {
                found.insert(name);
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`, with its path relative to `root`.
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            out.push((rel, path));
        }
    }
}

/// The imports of the crate under `src` that break the layering, one line each.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for (rel, path) in files {
        let module = rel.split(['/', '.']).next().unwrap_or_default().to_owned();
        let Some(own) = layer_of(&module) else {
            // lib.rs and forward.rs sit outside the layers (the root and the port macro).
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for imported in imported_modules(&text) {
            let Some(theirs) = layer_of(&imported) else {
                continue;
            };
            let excused = EXCEPTIONS
                .iter()
                .any(|(file, target, _)| *file == rel && *target == imported);
            if theirs > own && !excused {
                let what = if own <= CORE_TOP {
                    "the domain core"
                } else {
                    "a lower layer"
                };
                out.push(format!(
                    "{rel} ({what}, layer {own}: {module}) imports crate::{imported} (layer {theirs})"
                ));
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the layers of docs/adr/0007:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))
                .and_then(|m| m.strip_suffix(';'))
        })
        .collect();
    assert!(declared.len() > 10, "lib.rs declares {declared:?}");
    for module in declared {
        assert!(
            module == "forward" || layer_of(module).is_some(),
            "module {module} is in no layer of tests/domain/layers.rs"
        );
    }
}

/// The check fails when a core file imports from a port's adapter, the webhooks or the
/// service, and passes the same file without that import.
#[test]
fn a_core_module_importing_an_adapter_fails_the_check() {
    let dir = std::env::temp_dir().join(format!("layers-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("session")).expect("temp dir");
    let write = |rel: &str, text: &str| std::fs::write(dir.join(rel), text).expect("write");
    write(
        "money.rs",
        "use crate::error::Error;\n/// [`X`](crate::store::Store)\n",
    );
    write(
        "session/mod.rs",
        "use crate::{id::SessionId, payment::{Payment}};\n",
    );
    assert_eq!(violations(&dir), Vec::<String>::new(), "clean tree");
    for (file, text, target) in [
        ("money.rs", "use crate::store::Store;\n", "store"),
        (
            "session/json.rs",
            "use crate::{id::SessionId, request::{RequestError}};\n",
            "request",
        ),
        (
            "event.rs",
            "fn f() { crate::webhook::sign(); }\n",
            "webhook",
        ),
        (
            "outbox.rs",
            "use crate::{\n    service::Checkout,\n};\n",
            "service",
        ),
    ] {
        write(file, text);
        let found = violations(&dir);
        assert_eq!(found.len(), 1, "{file}: {found:?}");
        assert!(
            found[0].contains(&format!("imports crate::{target}")),
            "{found:?}"
        );
        assert!(found[0].contains("the domain core"), "{found:?}");
        std::fs::remove_file(dir.join(file)).expect("remove");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
