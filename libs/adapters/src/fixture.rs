//! Loading the safe-view fixture (contract spec §5) into a database.

/// `fixtures/pg/safeview_fixtures.sql`: the fixture table, its two rows and
/// the six tenant-scoped views, created in the current schema. Re-runnable.
pub const SAFEVIEW_FIXTURE_SQL: &str = include_str!("../../../fixtures/pg/safeview_fixtures.sql");

/// Runs `sql` statement by statement, split on `;` (the fixture has no `;`
/// inside literals or comments). Blank pieces are skipped.
pub async fn load_fixture_sql(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    for statement in sql.split(';') {
        let statement = statement.trim();
        if statement.is_empty() {
            continue;
        }
        client.batch_execute(statement).await?;
    }
    Ok(())
}
