//! Plain text tables for a terminal: columns padded to their widest cell.

/// Renders `rows` under `header`, columns of numbers right-aligned.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // A column of numbers is right-aligned, its header with it.
    let numeric: Vec<bool> = (0..header.len())
        .map(|column| {
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|row| row.get(column).is_some_and(|cell| is_number(cell)))
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths.iter().zip(&numeric))
            .map(|(cell, (width, numeric))| {
                if *numeric {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn is_number(cell: &str) -> bool {
    let digits = cell.strip_prefix('+').unwrap_or(cell);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == ',')
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let text = super::render(
            &["GROUP", "LAG"],
            &[
                vec!["validation".into(), "5".into()],
                vec!["ledger".into(), "1200".into()],
            ],
        );
        assert_eq!(
            text,
            "GROUP        LAG\nvalidation     5\nledger      1200\n"
        );
    }
}
