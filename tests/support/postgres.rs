//! A schema of its own in the machine's Postgres for each test, dropped at
//! the end. `KEYHOST_TEST_DATABASE_URL` overrides the default
//! `postgres://postgres@127.0.0.1:5432/test`.

use tokio_postgres::{Client, NoTls};

pub fn database_url() -> String {
    std::env::var("KEYHOST_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub async fn connect() -> Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach Postgres at {}: {e}; run `make services-up`",
                database_url()
            )
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

pub struct TestSchema {
    pub name: String,
    pub client: Client,
}

impl TestSchema {
    pub async fn new() -> Self {
        let mut bytes = [0u8; 6];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").unwrap(),
            &mut bytes,
        )
        .unwrap();
        let name = format!("keyhost_test_{}", hex::encode(bytes));
        let client = connect().await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Self { name, client }
    }

    /// `schema.table`
    pub fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime's reach: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = connect().await;
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
            });
        })
        .join();
    }
}
