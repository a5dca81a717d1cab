//! The listing statements of the SQL stores (sessions and links), one per combination of
//! the filters a query uses (so each statement names only the columns it filters on and
//! the planner picks the index for them), built once per dialect and kept for the life of
//! the process.

use std::sync::OnceLock;

use super::{LinkListQuery, ListQuery, StoreError};
use crate::json::millis;

/// How a dialect writes its numbered placeholders.
#[derive(Clone, Copy)]
pub(super) enum Dialect {
    /// `?1`, `?2`, … (SQLite).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    /// `$1`, `$2`, … (PostgreSQL).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

/// A value bound to a listing statement.
#[derive(Debug, Clone)]
pub(super) enum ListParam {
    Int(i64),
    Text(String),
    /// A flag: SQLite's INTEGER 0 or 1, PostgreSQL's BOOLEAN.
    Bool(bool),
}

/// A listing, ready to run: the statement, its parameters in placeholder order (the first
/// is the row count to fetch, one more than the page size, telling whether there is more)
/// and whether it reads oldest first (a page before a cursor, reversed by the caller).
pub(super) struct ListStatement {
    pub(super) sql: &'static str,
    pub(super) params: Vec<ListParam>,
    pub(super) newer: bool,
    pub(super) limit: usize,
}

// One bit per filter; `NEWER` only with `CURSOR`.
const CURSOR: usize = 1;
const NEWER: usize = 2;
const STATUS: usize = 4;
const SOURCE: usize = 8;
const METADATA: usize = 16;
const GTE: usize = 32;
const LT: usize = 64;
const REVIEW: usize = 128;
const LIVE: usize = 256;
const SHAPES: usize = 512;

/// The statement and parameters answering `query` in `dialect`, selecting `columns`
/// (with the session table named `s`); a query without a page is refused.
pub(super) fn list_statement(
    query: &ListQuery,
    dialect: Dialect,
) -> Result<ListStatement, StoreError> {
    let limit = query.page_size()?;
    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let mut params = vec![ListParam::Int(fetch)];
    let mut shape = 0;
    let mut text = |shape_bit: usize, shape: &mut usize, value: String| {
        *shape |= shape_bit;
        params.push(ListParam::Text(value));
    };
    let cursor = query.ending_before.or(query.starting_after);
    if let Some(c) = cursor {
        text(CURSOR, &mut shape, c.to_string());
    }
    let newer = query.ending_before.is_some();
    if newer {
        shape |= NEWER;
    }
    if let Some(status) = query.status {
        text(STATUS, &mut shape, status.as_str().to_owned());
    }
    if let Some(source) = &query.source_id {
        text(SOURCE, &mut shape, source.clone());
    }
    if let Some((key, value)) = &query.metadata {
        text(METADATA, &mut shape, key.clone());
        params.push(ListParam::Text(value.clone()));
    }
    for (bit, bound) in [(GTE, query.created_gte), (LT, query.created_lt)] {
        if let Some(at) = bound {
            shape |= bit;
            params.push(ListParam::Int(millis::to_millis(at)));
        }
    }
    if query.unresolved_flags {
        shape |= REVIEW;
    }
    if let Some(live) = query.livemode {
        shape |= LIVE;
        params.push(ListParam::Bool(live));
    }
    Ok(ListStatement {
        sql: statements(dialect)[shape].as_str(),
        params,
        newer,
        limit,
    })
}

fn statements(dialect: Dialect) -> &'static [String] {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let cell = match dialect {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| (0..SHAPES).map(|shape| statement(shape, dialect)).collect())
}

/// The statement of one shape. Placeholders are numbered in the order
/// [`list_statement`] pushes parameters.
fn statement(shape: usize, dialect: Dialect) -> String {
    let mut n = 1;
    let mut next = || {
        n += 1;
        match dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    };
    let columns = match dialect {
        Dialect::Sqlite => "SELECT s.id, s.head, s.version ",
        #[cfg(feature = "postgres")]
        Dialect::Postgres => super::postgres::SESSION_COLUMNS,
        #[cfg(not(feature = "postgres"))]
        Dialect::Postgres => "",
    };
    let has = |bit: usize| shape & bit != 0;
    // The lookups start from their index whatever the planner guesses of the other
    // filters (SQLite has no statistics unless ANALYZE ran): the metadata rows first (a
    // CROSS JOIN keeps SQLite's join order; PostgreSQL plans it as any join), else the
    // `source_id` index.
    let mut from = match (has(METADATA), has(SOURCE), dialect) {
        (true, _, _) => String::from("FROM session_metadata m CROSS JOIN sessions s"),
        (false, true, Dialect::Sqlite) => {
            String::from("FROM sessions s INDEXED BY sessions_by_source")
        }
        _ => String::from("FROM sessions s"),
    };
    let mut filter = String::from(" WHERE 1 = 1");
    let newer = has(CURSOR) && has(NEWER);
    if has(CURSOR) {
        from.push_str(", sessions c");
        let side = if newer { '>' } else { '<' };
        filter.push_str(&format!(
            " AND c.id = {} AND (s.created, s.id) {side} (c.created, c.id)",
            next()
        ));
    }
    if has(STATUS) {
        filter.push_str(&format!(" AND s.status = {}", next()));
    }
    if has(SOURCE) {
        filter.push_str(&format!(" AND s.source_id = {}", next()));
    }
    if has(METADATA) {
        // From the metadata table's (key, value) index to the few sessions it names.
        let (key, value) = (next(), next());
        filter.push_str(&format!(
            " AND m.key = {key} AND m.value = {value} AND s.id = m.session_id"
        ));
    }
    if has(GTE) {
        filter.push_str(&format!(" AND s.created >= {}", next()));
    }
    if has(LT) {
        filter.push_str(&format!(" AND s.created < {}", next()));
    }
    if has(REVIEW) {
        // Written as the partial index's condition, so each planner can use it.
        filter.push_str(match dialect {
            Dialect::Sqlite => " AND s.review = 1",
            Dialect::Postgres => " AND s.review",
        });
    }
    if has(LIVE) {
        filter.push_str(&format!(" AND s.livemode = {}", next()));
    }
    let order = if newer {
        "s.created ASC, s.id ASC"
    } else {
        "s.created DESC, s.id DESC"
    };
    let first = match dialect {
        Dialect::Sqlite => "?1",
        Dialect::Postgres => "$1",
    };
    format!("{columns}{from}{filter} ORDER BY {order} LIMIT {first}")
}

// The link listing's filters: one bit each, as above (`NEWER` only with `CURSOR`).
const LINK_KIND: usize = 4;
const LINK_LIVE: usize = 8;
const LINK_SHAPES: usize = 16;

/// The link listing statement and parameters answering `query` in `dialect`, selecting
/// each link's `id`, `version` and `body`; a query without a page is refused.
pub(super) fn link_list_statement(
    query: &LinkListQuery,
    dialect: Dialect,
) -> Result<ListStatement, StoreError> {
    let limit = query.page_size()?;
    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let mut params = vec![ListParam::Int(fetch)];
    let mut shape = 0;
    if let Some(c) = query.ending_before.or(query.starting_after) {
        shape |= CURSOR;
        params.push(ListParam::Text(c.to_string()));
    }
    let newer = query.ending_before.is_some();
    if newer {
        shape |= NEWER;
    }
    if let Some(kind) = query.kind {
        shape |= LINK_KIND;
        params.push(ListParam::Text(kind.as_str().to_owned()));
    }
    if let Some(live) = query.livemode {
        shape |= LINK_LIVE;
        params.push(ListParam::Bool(live));
    }
    Ok(ListStatement {
        sql: link_statements(dialect)[shape].as_str(),
        params,
        newer,
        limit,
    })
}

fn link_statements(dialect: Dialect) -> &'static [String] {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let cell = match dialect {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        (0..LINK_SHAPES)
            .map(|shape| link_statement(shape, dialect))
            .collect()
    })
}

/// The link statement of one shape, placeholders numbered as [`link_list_statement`]
/// pushes parameters.
fn link_statement(shape: usize, dialect: Dialect) -> String {
    let placeholder = |n: usize| match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    };
    let mut n = 1;
    let mut next = || {
        n += 1;
        placeholder(n)
    };
    let has = |bit: usize| shape & bit != 0;
    let mut from = String::from("FROM links l");
    let mut filter = String::from(" WHERE 1 = 1");
    let newer = has(CURSOR) && has(NEWER);
    if has(CURSOR) {
        from.push_str(", links c");
        let side = if newer { '>' } else { '<' };
        filter.push_str(&format!(
            " AND c.id = {} AND (l.created, l.id) {side} (c.created, c.id)",
            next()
        ));
    }
    if has(LINK_KIND) {
        filter.push_str(&format!(" AND l.kind = {}", next()));
    }
    if has(LINK_LIVE) {
        filter.push_str(&format!(" AND l.livemode = {}", next()));
    }
    let order = if newer {
        "l.created ASC, l.id ASC"
    } else {
        "l.created DESC, l.id DESC"
    };
    format!(
        "SELECT l.id, l.version, l.body {from}{filter} ORDER BY {order} LIMIT {}",
        placeholder(1)
    )
}
