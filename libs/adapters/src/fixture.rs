//! Loading the safe-view fixture (contract spec §5) into a database.

/// `fixtures/pg/safeview_fixtures.sql`: the fixture table, its two rows, the
/// six tenant-scoped views and the read grants of the gateway's role,
/// created in the current schema. Re-runnable.
pub const SAFEVIEW_FIXTURE_SQL: &str = include_str!("../../../fixtures/pg/safeview_fixtures.sql");

/// Runs `sql` statement by statement, split on `;` outside dollar-quoted
/// bodies (the fixture has no `;` inside literals or comments). Blank pieces
/// are skipped.
pub async fn load_fixture_sql(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    for statement in split_statements(sql) {
        client.batch_execute(statement).await?;
    }
    Ok(())
}

/// The non-blank statements of `sql`, trimmed.
fn split_statements(sql: &str) -> Vec<&str> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < sql.len() {
        let rest = &sql[index..];
        if let Some(tag) = dollar_tag(rest) {
            // Skip to the end of the matching closing tag (or of the text).
            let body = index + tag.len();
            index = sql[body..]
                .find(tag)
                .map_or(sql.len(), |end| body + end + tag.len());
            continue;
        }
        if rest.starts_with(';') {
            statements.push(&sql[start..index]);
            start = index + 1;
        }
        index += rest.chars().next().map_or(1, char::len_utf8);
    }
    statements.push(&sql[start..]);
    statements
        .into_iter()
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .collect()
}

/// The dollar-quote tag (`$$` or `$name$`) `text` starts with, if any.
fn dollar_tag(text: &str) -> Option<&str> {
    let after = text.strip_prefix('$')?;
    let name_len = after
        .char_indices()
        .find(|&(at, c)| !(c == '_' || c.is_ascii_alphabetic() || (at > 0 && c.is_ascii_digit())))
        .map_or(after.len(), |(at, _)| at);
    after[name_len..]
        .starts_with('$')
        .then(|| &text[..name_len + 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_separators_outside_dollar_quotes() {
        let sql = "CREATE TABLE a (x int);\n\nDO $$ BEGIN PERFORM 1; END $$;\n\
                   DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$; SELECT $1 ;  ;";
        assert_eq!(
            split_statements(sql),
            [
                "CREATE TABLE a (x int)",
                "DO $$ BEGIN PERFORM 1; END $$",
                "DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$",
                "SELECT $1",
            ]
        );
    }

    #[test]
    fn an_unterminated_dollar_quote_is_one_statement() {
        assert_eq!(
            split_statements("SELECT 1; DO $$ BEGIN; END"),
            ["SELECT 1", "DO $$ BEGIN; END"]
        );
    }

    #[test]
    fn the_fixture_splits_into_its_statements() {
        let statements = split_statements(SAFEVIEW_FIXTURE_SQL);
        let block = statements
            .iter()
            .find(|statement| statement.contains("DO $$"))
            .expect("the role block");
        assert!(block.contains("CREATE ROLE pecr_safeview_read NOLOGIN;") && block.ends_with("$$"));
        assert!(statements.last().is_some_and(
            |last| last.starts_with("-- The five") && last.ends_with("TO pecr_safeview_read")
        ));
    }
}
