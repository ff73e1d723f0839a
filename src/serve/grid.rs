//! Checks expanded from one `[[checks]]` entry, laid out as a grid: rows
//! and columns are matrix values (the columns are the last key, or the
//! routes in the order written), cells are the checks' results. A grid with
//! routes also says which route breaks. The page, the API and the report
//! all lay out with [`layout`], each with its own cell.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::Check;
use crate::model::Family;

/// One `[[checks]]` entry's checks as a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid<C> {
    /// The entry's name before expansion.
    pub title: String,
    pub group: String,
    /// The matrix keys the rows are made of (none for routes alone).
    pub row_keys: Vec<String>,
    /// The key the columns are the values of (`route` with routes); empty
    /// for a one-key matrix, whose grid is a single column.
    pub column_key: String,
    pub columns: Vec<String>,
    /// Whether the columns are routes to one service, compared.
    pub routes: bool,
    pub rows: Vec<Row<C>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row<C> {
    /// The row's values: `/v1/models`, or `path=/a, tenant=b` for several keys.
    pub label: String,
    /// One per column; `null` where the combination is not run here (its
    /// shard or location is another instance's).
    pub cells: Vec<Option<C>>,
    /// With routes: which route breaks, once every route has a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
}

/// What a diagnosis needs of a cell.
pub trait Verdict {
    /// `Some(true)` passing, `Some(false)` failing, `None` no result yet.
    fn passing(&self) -> Option<bool>;
    /// The status or failure kind shown in brackets: `404`, `timeout`.
    fn shown(&self) -> String;
}

/// The grids of `items` (checks in config order with their cells): one per
/// family, in the order their first check comes. Plain checks have none.
/// Two entries with the same title, keys and routes make one grid (their
/// checks' names, unique, keep the cells apart).
pub fn layout<'a, C: Verdict>(items: impl IntoIterator<Item = (&'a Check, C)>) -> Vec<Grid<C>> {
    struct Building<C> {
        family: Arc<Family>,
        group: String,
        columns: Vec<String>,
        rows: Vec<(String, Vec<Option<C>>)>,
        column_at: HashMap<String, usize>,
        row_at: HashMap<String, usize>,
    }
    let mut grids: Vec<Building<C>> = Vec::new();
    let mut grid_at: HashMap<Arc<Family>, usize> = HashMap::new();
    for (check, cell) in items {
        let Some(family) = &check.family else {
            continue;
        };
        let value = |key: &str| {
            check
                .matrix
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| v.as_str())
        };
        let (row_keys, column_key) = axes(family);
        let column = if column_key.is_empty() {
            String::new()
        } else {
            value(column_key).to_owned()
        };
        let label = match row_keys {
            [] => String::new(),
            [one] => value(one).to_owned(),
            many => many
                .iter()
                .map(|k| format!("{k}={}", value(k)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        // By value: after a reload that added a value, the kept checks hold
        // the old load's family and the new ones an equal new one.
        let at = *grid_at.entry(family.clone()).or_insert_with(|| {
            let columns = family.routes.clone();
            grids.push(Building {
                family: family.clone(),
                group: check.group.clone(),
                column_at: columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), i))
                    .collect(),
                columns,
                rows: Vec::new(),
                row_at: HashMap::new(),
            });
            grids.len() - 1
        });
        let g = &mut grids[at];
        let col = match g.column_at.get(&column) {
            Some(&col) => col,
            None => {
                g.column_at.insert(column.clone(), g.columns.len());
                g.columns.push(column);
                for (_, cells) in &mut g.rows {
                    cells.push(None);
                }
                g.columns.len() - 1
            }
        };
        let width = g.columns.len();
        let row = match g.row_at.get(&label) {
            Some(&row) => row,
            None => {
                g.row_at.insert(label.clone(), g.rows.len());
                g.rows
                    .push((label, std::iter::repeat_with(|| None).take(width).collect()));
                g.rows.len() - 1
            }
        };
        g.rows[row].1[col] = Some(cell);
    }
    grids
        .into_iter()
        .map(|g| {
            let (row_keys, column_key) = axes(&g.family);
            let routes = !g.family.routes.is_empty();
            Grid {
                title: g.family.title.clone(),
                group: g.group,
                row_keys: row_keys.to_vec(),
                column_key: column_key.to_owned(),
                rows: g
                    .rows
                    .into_iter()
                    .map(|(label, cells)| Row {
                        diagnosis: routes.then(|| diagnose(&g.columns, &cells)).flatten(),
                        label,
                        cells,
                    })
                    .collect(),
                columns: g.columns,
                routes,
            }
        })
        .collect()
}

impl<C> Grid<C> {
    /// The heading over the row labels: `path`, or `path, tenant`; empty
    /// when the only rows are the routes' one.
    pub fn rows_heading(&self) -> String {
        if self.row_keys.is_empty() {
            String::new()
        } else {
            self.row_keys.join(", ")
        }
    }
}

/// Rows and columns of a family: the last key is the columns, unless it is
/// the only key of a matrix (then the values are rows of one column).
fn axes(family: &Family) -> (&[String], &str) {
    match family.keys.as_slice() {
        [only] if family.routes.is_empty() => (std::slice::from_ref(only), ""),
        [rows @ .., last] => (rows, last.as_str()),
        [] => (&[], ""),
    }
}

/// Which route breaks, read from the routes' results in the order written.
/// Written from the service outwards (`internal, proxy, public`: passes
/// then fails) or from the outside in (fails then passes), the break is
/// the failing route next to a passing one; `None` while a route has no
/// result or is not run here.
pub fn diagnose<C: Verdict>(routes: &[String], cells: &[Option<C>]) -> Option<String> {
    let mut passing = Vec::with_capacity(cells.len());
    for cell in cells {
        passing.push(cell.as_ref()?.passing()?);
    }
    let shown = |i: usize| {
        let what = cells[i].as_ref().map(Verdict::shown).unwrap_or_default();
        format!("{} ({what})", routes[i])
    };
    let list = |want: bool| {
        (0..cells.len())
            .filter(|&i| passing[i] == want)
            .map(shown)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let n = passing.len();
    let leading = |want: bool| passing.iter().take_while(|&&p| p == want).count();
    if leading(true) == n {
        return Some(format!("passes via every route: {}", list(true)));
    }
    if leading(false) == n {
        return Some(format!("fails via every route: {}", list(false)));
    }
    let (p, f) = (leading(true), leading(false));
    // Passes then fails (service first), or fails then passes (outside
    // in): the break is at the boundary.
    let boundary = if p > 0 && passing[p..].iter().all(|&x| !x) {
        Some((p, p - 1))
    } else if f > 0 && passing[f..].iter().all(|&x| x) {
        Some((f - 1, f))
    } else {
        None
    };
    Some(match boundary {
        Some((broken, behind)) => {
            let what = match cells[broken].as_ref().map(Verdict::shown).as_deref() {
                Some("404") => "missing",
                _ => "broken",
            };
            format!(
                "fails via {}, passes via {}: the {} route is {what}",
                shown(broken),
                shown(behind),
                routes[broken]
            )
        }
        None => format!("fails via {}; passes via {}", list(false), list(true)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cell(Option<bool>, &'static str);

    impl Verdict for Cell {
        fn passing(&self) -> Option<bool> {
            self.0
        }
        fn shown(&self) -> String {
            self.1.to_owned()
        }
    }

    fn routes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Cells written as `200`/`404`/… (passing when 2xx), `?` pending,
    /// `-` not run here.
    fn cells(spec: &[&'static str]) -> Vec<Option<Cell>> {
        spec.iter()
            .map(|&s| match s {
                "-" => None,
                "?" => Some(Cell(None, "")),
                s => Some(Cell(Some(s.starts_with('2')), s)),
            })
            .collect()
    }

    #[test]
    fn the_diagnosis_names_the_route_that_breaks() {
        let inside_out = routes(&["internal", "proxy", "public"]);
        let outside_in = routes(&["public", "proxy", "internal"]);
        let cases: &[(&[String], &[&'static str], Option<&str>)] = &[
            (
                &inside_out,
                &["200", "404", "404"],
                Some(
                    "fails via proxy (404), passes via internal (200): the proxy route is missing",
                ),
            ),
            (
                &outside_in,
                &["404", "404", "200"],
                Some(
                    "fails via proxy (404), passes via internal (200): the proxy route is missing",
                ),
            ),
            (
                &inside_out,
                &["200", "200", "502"],
                Some("fails via public (502), passes via proxy (200): the public route is broken"),
            ),
            (
                &inside_out,
                &["200", "200", "200"],
                Some("passes via every route: internal (200), proxy (200), public (200)"),
            ),
            (
                &inside_out,
                &["503", "timeout", "503"],
                Some("fails via every route: internal (503), proxy (timeout), public (503)"),
            ),
            (
                &inside_out,
                &["200", "404", "200"],
                Some("fails via proxy (404); passes via internal (200), public (200)"),
            ),
            (&inside_out, &["200", "?", "404"], None),
            (&inside_out, &["200", "-", "404"], None),
        ];
        let mut failures = Vec::new();
        for (routes, spec, want) in cases {
            let got = diagnose(routes, &cells(spec));
            if got.as_deref() != *want {
                failures.push(format!("{spec:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
