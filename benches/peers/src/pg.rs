//! PostgreSQL: one row per token, primary key on the token hash (what a refresh looks up),
//! an index on (account, app) (what a revoke deletes by). Revoke is one prepared
//! `DELETE … RETURNING`, committed on its own, so its latency includes the commit.

use crate::bench::{Spec, token_hash};
use anyhow::Context;
use tokio_postgres::{Client, NoTls, Statement};

const REVOKE: &str =
    "DELETE FROM tokens WHERE account_id = $1 AND app_id = $2 RETURNING token_hash";

/// The columns of the token rows for (a, p, i), computed by the server so that loading and
/// restoring send no data; `token_hash` equals `bench::token_hash`.
const ROW: &str = "sha256(int8send(a) || int4send(p) || int4send(i)), a, p, \
     substring(sha256(int8send(a) || int4send(p) || int4send(i) || '\\x73'::bytea) from 1 for 16), \
     1900000000 + a";

async fn client(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; the client sees either.
        let _ = conn.await;
    });
    Ok(client)
}

pub struct Pg {
    url: String,
    /// The connection that loads, restores and vacuums.
    admin: Client,
}

impl Pg {
    pub async fn open(url: &str) -> anyhow::Result<Pg> {
        Ok(Pg {
            url: url.to_owned(),
            admin: client(url).await?,
        })
    }

    /// The server's name and version, and the settings that decide when a commit is acknowledged.
    pub async fn describe(&self) -> anyhow::Result<(String, String)> {
        let show = async |what: &str| -> anyhow::Result<String> {
            let row = self.admin.query_one(&format!("SHOW {what}"), &[]).await?;
            Ok(row.try_get::<_, String>(0)?)
        };
        let version = show("server_version").await?;
        let version = version.split_whitespace().next().unwrap_or_default();
        Ok((
            format!("PostgreSQL {version}"),
            format!(
                "synchronous_commit={}, fsync={}",
                show("synchronous_commit").await?,
                show("fsync").await?
            ),
        ))
    }

    pub async fn load(&mut self, spec: Spec) -> anyhow::Result<()> {
        // Rows first, indexes after: the peer baselines' load, and far faster than indexing
        // row by row.
        self.admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS tokens;
                 CREATE TABLE tokens (token_hash bytea NOT NULL, account_id bigint NOT NULL,
                     app_id int NOT NULL, session_id bytea NOT NULL, expires_at bigint NOT NULL);
                 INSERT INTO tokens SELECT {ROW}
                     FROM generate_series(0::bigint, {a}) a, generate_series(0, {p}) p,
                          generate_series(0, {t}) i;
                 ALTER TABLE tokens ADD PRIMARY KEY (token_hash);
                 CREATE INDEX tokens_account_app ON tokens (account_id, app_id);",
                a = spec.accounts - 1,
                p = spec.apps - 1,
                t = spec.tokens_per_pair - 1,
            ))
            .await?;
        // Alone: VACUUM cannot run inside the implicit transaction of a multi-statement batch.
        self.admin.batch_execute("VACUUM ANALYZE tokens").await?;
        // The server's hashes must be the ones this program computes (Redis gets those).
        let rows = self
            .admin
            .query(
                "SELECT token_hash FROM tokens WHERE account_id = 0 AND app_id = 0",
                &[],
            )
            .await?;
        let mut got: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
        got.sort();
        let mut want: Vec<Vec<u8>> = (0..spec.tokens_per_pair)
            .map(|i| token_hash(0, 0, i32::try_from(i).expect("tokens per pair fit i32")).to_vec())
            .collect();
        want.sort();
        anyhow::ensure!(got == want, "the server's token hashes differ from ours");
        Ok(())
    }

    /// Re-inserts the tokens of `pairs` (the same rows as the load), then vacuums, as the
    /// peer baselines did between runs.
    pub async fn restore(&mut self, spec: Spec, pairs: &[(i64, i32)]) -> anyhow::Result<()> {
        let insert = self
            .admin
            .prepare(&format!(
                "INSERT INTO tokens SELECT {ROW}
                     FROM unnest($1::int8[], $2::int4[]) AS u(a, p), generate_series(0, $3 - 1) i
                 ON CONFLICT (token_hash) DO NOTHING"
            ))
            .await?;
        let t = i32::try_from(spec.tokens_per_pair).context("--tokens-per-pair")?;
        for chunk in pairs.chunks(50_000) {
            let accounts: Vec<i64> = chunk.iter().map(|&(a, _)| a).collect();
            let apps: Vec<i32> = chunk.iter().map(|&(_, p)| p).collect();
            self.admin.execute(&insert, &[&accounts, &apps, &t]).await?;
        }
        self.admin.batch_execute("VACUUM tokens").await?;
        Ok(())
    }

    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let client = client(&self.url).await?;
        let revoke = client.prepare(REVOKE).await?;
        let ping = client.prepare("SELECT 1").await?;
        Ok(Conn {
            client,
            revoke,
            ping,
        })
    }
}

/// A worker's connection, with its prepared statements (pgbench `-M prepared`).
pub struct Conn {
    client: Client,
    revoke: Statement,
    ping: Statement,
}

fn short(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) => format!("sqlstate {}", code.code()),
        None if e.is_closed() => "connection".into(),
        None => "client".into(),
    }
}

impl Conn {
    pub async fn revoke(&mut self, account: i64, app: i32) -> Result<usize, String> {
        self.client
            .query(&self.revoke, &[&account, &app])
            .await
            .map(|rows| rows.len())
            .map_err(|e| short(&e))
    }

    pub async fn ping(&mut self) -> Result<(), String> {
        self.client
            .query(&self.ping, &[])
            .await
            .map(|_| ())
            .map_err(|e| short(&e))
    }
}
