//! A small CSV reader and writer (RFC 4180: commas, double-quoted fields, `""` inside quotes),
//! enough for price lists.

/// Splits a CSV text into rows of fields; a quoted field may hold commas, quotes (doubled) and
/// line breaks. Blank lines are skipped. `Err` names the line of an unterminated quote.
pub fn parse(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut row_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, '\n') => {
                field.push('\n');
                line += 1;
            }
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                if !(row.len() == 1 && row[0].trim().is_empty()) {
                    rows.push((row_line, std::mem::take(&mut row)));
                }
                row.clear();
                line += 1;
                row_line = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {row_line}: a quoted field is not closed"));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// What a spreadsheet takes for the start of a formula (OWASP's CSV injection list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text field as CSV: a value that a spreadsheet would run as a formula (it begins with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) is written after a `'`, which spreadsheets
/// show as text; quoted when it holds a comma, a quote or a line break. Numbers are written as
/// they are, never through this.
pub fn field(value: &str) -> String {
    let value = if value.starts_with(FORMULA_STARTS) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// A text field as [`field`] wrote it: the `'` before a would-be formula taken off again, so
/// an exported list imports as it was.
pub fn text(value: &str) -> String {
    match value.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest.to_owned(),
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_spreadsheets_write() {
        let text = "code,description\r\nLAB,\"Blood count, full\"\n\nXR,\"Chest \"\"PA\"\" view\"\nMULTI,\"two\nlines\"\nLAST,no newline";
        let rows = parse(text).unwrap();
        assert_eq!(rows[0], (1, vec!["code".to_owned(), "description".to_owned()]));
        assert_eq!(rows[1], (2, vec!["LAB".to_owned(), "Blood count, full".to_owned()]));
        assert_eq!(rows[2], (4, vec!["XR".to_owned(), "Chest \"PA\" view".to_owned()]));
        assert_eq!(rows[3], (5, vec!["MULTI".to_owned(), "two\nlines".to_owned()]));
        assert_eq!(rows[4], (7, vec!["LAST".to_owned(), "no newline".to_owned()]));
        assert!(parse("a,\"b\n").is_err());
    }

    #[test]
    fn writes_what_it_reads() {
        for value in ["plain", "with, comma", "with \"quotes\"", "two\nlines", "=1+1", "-x", "'quoted"] {
            let written = format!("{},x\n", field(value));
            let read = &parse(&written).unwrap()[0].1;
            assert_eq!((text(&read[0]).as_str(), read[1].as_str()), (value, "x"), "{written}");
        }
    }

    #[test]
    fn a_would_be_formula_is_written_as_text() {
        for (value, written) in [
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("+254700000000", "'+254700000000"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\tcmd", "'\tcmd"),
            ("=1,2", "\"'=1,2\""),
            ("Blood count = FBC", "Blood count = FBC"),
            ("plain", "plain"),
        ] {
            assert_eq!(field(value), written, "{value}");
        }
    }
}
