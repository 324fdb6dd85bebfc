//! The PostgreSQL harness itself: each test database is its own, usable, and
//! gone once dropped.

use crate::support::postgres::cluster;

#[test]
fn databases_are_distinct_usable_and_dropped() {
    let cluster = cluster();
    let first = cluster.database();
    let second = cluster.database();
    assert_ne!(first.name(), second.name());
    assert_eq!(
        first.url,
        format!(
            "postgres://pallet@127.0.0.1:{}/{}",
            cluster.port(),
            first.name()
        )
    );

    cluster.psql(
        first.name(),
        "CREATE TABLE only_here (id int); INSERT INTO only_here VALUES (7)",
    );
    assert_eq!(cluster.psql(first.name(), "SELECT id FROM only_here"), "7");
    let exists = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'";
    assert_eq!(cluster.psql(first.name(), exists), "1");
    assert_eq!(cluster.psql(second.name(), exists), "0");

    let name = first.name().to_string();
    let listed = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(cluster.psql("postgres", &listed), "1");
    drop(first);
    assert_eq!(cluster.psql("postgres", &listed), "0");
    assert_eq!(cluster.psql(second.name(), "SELECT 1"), "1");
}
